/**
 * Text assets bundled by esbuild's `text` loader (and loaded as text by the
 * vitest config and by `lib/text-assets.ts` in the CDK app): the default export
 * is the file's content. The extensions are `TEXT_ASSET_EXTENSIONS`.
 */
declare module '*.log' {
  const text: string;
  export default text;
}

/** A YAML file (a tool manifest: `lambdas/core/manifest.ts`), as text. */
declare module '*.yaml' {
  const text: string;
  export default text;
}

/** A YAML file (a tool manifest: `lambdas/core/manifest.ts`), as text. */
declare module '*.yml' {
  const text: string;
  export default text;
}

/** Cedar policies, as text. */
declare module '*.cedar' {
  const text: string;
  export default text;
}
