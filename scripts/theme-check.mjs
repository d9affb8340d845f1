// Theme Check on the extension with its own config (theme-app-extension); exits 1 on any offense.
import path from 'node:path';
import { themeCheckRun } from '@shopify/theme-check-node';

const root = path.resolve(process.argv[2] || 'extensions/chat-widget');
const config = path.join(root, '.theme-check.yml');
const { offenses, theme } = await themeCheckRun(root, config, () => {});
const severity = ['error', 'warning', 'info'];
for (const offense of offenses) {
  const where = offense.uri.replace(/^file:\/\//, '');
  const line = offense.start ? offense.start.line + 1 : 0;
  console.log(`${severity[offense.severity] || offense.severity} ${offense.check} ${path.relative(root, where)}:${line} ${offense.message}`);
}
console.log(`theme-check: ${theme.length} files, ${offenses.length} offenses`);
process.exit(offenses.length ? 1 : 0);
