// Lint enforces the architecture (runtime-design.md, "Where code lives"):
//   bin → lib → statemachines → lambdas/core;  handlers → adapters/observability → core.
//   Nothing under lambdas/ imports aws-cdk-lib or constructs; CDK code never imports handlers
//   or adapters (it names entry files); the pure core imports nothing impure.
import tseslint from 'typescript-eslint';

const cdk = ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs'];
const impure = ['@aws-sdk/*', '@smithy/*', '@aws-lambda-powertools/*', '@anthropic-ai/*', 'openai', 'openai/*', 'cockatiel', 'node-llama-cpp', 'node:fs', 'node:child_process', 'node:net', 'node:http', 'node:https', 'fs', 'child_process'];
const noImport = (groups, message) => ({ 'no-restricted-imports': ['error', { patterns: [{ group: groups, message }] }] });

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', 'cdk.*.out/**', '.build/**', '.venv/**', '.local-cloud/**', '.scratch/**', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      'no-restricted-properties': [
        'error',
        ...['it', 'test', 'describe'].flatMap((object) =>
          ['only', 'skip', 'todo'].map((property) => ({ object, property, message: 'no focused, skipped or todo tests' })),
        ),
      ],
    },
  },
  {
    files: ['lambdas/core/**/*.ts'],
    rules: noImport([...cdk, ...impure, '**/adapters/**', '**/handlers/**', '**/observability/**'], 'lambdas/core is pure: no AWS SDK, Powertools, I/O, CDK, adapters or handlers'),
  },
  {
    files: ['lambdas/adapters/**/*.ts', 'lambdas/observability/**/*.ts'],
    rules: noImport([...cdk, '**/handlers/**'], 'adapters and observability depend on core only; never on handlers or CDK'),
  },
  {
    files: ['lambdas/handlers/**/*.ts', 'examples/**/*.ts'],
    ignores: ['examples/**/deploy.ts'],
    rules: noImport(cdk, 'Lambda code never imports aws-cdk-lib or constructs'),
  },
  {
    files: ['lib/**/*.ts', 'statemachines/**/*.ts', 'bin/**/*.ts', 'examples/**/deploy.ts'],
    rules: noImport(
      ['**/lambdas/handlers/**', '**/lambdas/adapters/**', '**/lambdas/observability/**', '@aws-lambda-powertools/*', '@aws-sdk/*', '@anthropic-ai/*', 'openai', 'cockatiel'],
      'CDK code names handler entry files; it imports lambdas/core only, never handlers, adapters or the SDK',
    ),
  },
  {
    files: ['statemachines/**/*.ts'],
    rules: noImport(['**/lib/**', '**/lambdas/handlers/**', '**/lambdas/adapters/**'], 'statemachines depend on lambdas/core only'),
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
