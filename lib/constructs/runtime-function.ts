/**
 * The house Lambda function: a NodejsFunction (esbuild) with the runtime's
 * defaults. Every Lambda of the runtime and of its agents is one of these.
 */
import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

/** The repository root: NodejsFunction's project root and lock file location. */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/** Props of {@link RuntimeFunction}. */
export interface RuntimeFunctionProps {
  /** Absolute path of the handler's entry file. */
  readonly entry: string;
  /** Name of the exported handler. @default 'handler' */
  readonly handler?: string;
  /** The function's description (what it serves, e.g. `POST /runs/{sessionId}/resume, …`). */
  readonly description: string;
  /** Powertools service name (`POWERTOOLS_SERVICE_NAME`), e.g. `agent-runtime` or the agent's name. */
  readonly serviceName: string;
  /** The Lambda timeout. @default 30 seconds */
  readonly timeout?: Duration;
  /** Memory, MiB. @default 512 MiB */
  readonly memorySize?: number;
  /** Environment variables, added to (and overriding) the Powertools ones (`POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, `NODE_OPTIONS`). @default none */
  readonly environment?: Record<string, string>;
  /** Days of CloudWatch Logs retention (of its own log group). @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * A log group to share with other functions (Lambda's advanced logging controls)
   * instead of one of its own. @default a log group of its own
   */
  readonly logGroup?: logs.ILogGroup;
  /** Extra esbuild loaders, e.g. `{'.log': 'text'}` to embed a data file. */
  readonly loader?: Record<string, string>;
  /**
   * Whether the function evaluates Cedar policies (imports `@cedar-policy/cedar-wasm/nodejs`,
   * as `lambdas/adapters/policy-engine.ts` does): the bundle then carries
   * {@link CEDAR_WASM_FILE} beside `index.js`, where Cedar's glue code reads it
   * (`${__dirname}/cedar_wasm_bg.wasm`; esbuild bundles the JavaScript only).
   * @default false
   */
  readonly cedar?: boolean;
}

/** Cedar's WebAssembly module, relative to the project root: copied into the bundle of a `cedar` function. */
export const CEDAR_WASM_FILE = 'node_modules/@cedar-policy/cedar-wasm/nodejs/cedar_wasm_bg.wasm';

/**
 * A NodejsFunction with: runtime nodejs22.x on ARM64; the AWS SDK bundled in
 * (`externalModules: []`, so the bundle carries the SDK version it was tested
 * with); an esbuild target of node20 so the same bundle also runs on the local
 * cloud's Node 20; minified with names kept (error names survive); source maps;
 * X-Ray tracing; JSON logs into its own log group with a retention (or a shared
 * one, `logGroup`), which is the only log group its role may write to; with `cedar`, Cedar's WebAssembly
 * module beside the bundle.
 */
export class RuntimeFunction extends nodejs.NodejsFunction {
  constructor(scope: Construct, id: string, props: RuntimeFunctionProps) {
    const logGroup =
      props.logGroup ??
      new logs.LogGroup(scope, `${id}Logs`, {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    // Its own role, without AWSLambdaBasicExecutionRole (logs:* on every log group):
    // the function may write to its log group only.
    const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    super(scope, id, {
      role,
      entry: props.entry,
      handler: props.handler ?? 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize: props.memorySize ?? 512,
      tracing: lambda.Tracing.ACTIVE,
      loggingFormat: lambda.LoggingFormat.JSON,
      logGroup,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        externalModules: [],
        target: 'node20',
        format: nodejs.OutputFormat.CJS,
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
        loader: props.loader,
        commandHooks: props.cedar
          ? {
              beforeBundling: () => [],
              beforeInstall: () => [],
              afterBundling: (inputDir: string, outputDir: string) => [`cp "${path.posix.join(inputDir, CEDAR_WASM_FILE)}" "${outputDir}/"`],
            }
          : undefined,
      },
    });
  }
}
