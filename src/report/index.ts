/** Dispatch from `--format` to a renderer. */
import type { OutputFormat } from '../config/config.js';
import type { ScanResult } from '../engine/result.js';
import { renderGithub } from './github.js';
import { renderJson } from './json.js';
import { renderMarkdown } from './markdown.js';
import { renderSarif } from './sarif.js';
import { renderText, type TextOptions } from './text.js';
import { implementedFamilies } from '../rules/registry.js';

export function renderFormat(result: ScanResult, format: OutputFormat, options: TextOptions): string {
  switch (format) {
    case 'json':
      return renderJson(result);
    case 'sarif':
      return renderSarif(result);
    case 'github':
      return renderGithub(result);
    case 'markdown':
      return renderMarkdown(result, { implementedFamilies: implementedFamilies() });
    case 'text':
      return renderText(result, options);
  }
}
