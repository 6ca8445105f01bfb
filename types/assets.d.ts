/**
 * Text assets bundled by esbuild's `text` loader (and loaded as text by the
 * vitest config): the default export is the file's content.
 */
declare module '*.log' {
  const text: string;
  export default text;
}
