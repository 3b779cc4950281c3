/** The reporting module: result rows → CSV, JSON, SVG plots and one offline HTML report. */
export { RESULT_COLUMNS, type Plot, type ReportData, type ResultRow } from './types.js';
export { csvField, toCsv } from './csv.js';
export { PLOT_HEIGHT, PLOT_WIDTH, plotSpecs, renderPlots, renderSvg, yScaleFor } from './plot.js';
export { escapeHtml, formatBytes, renderHtml } from './html.js';
export { checkReportData, writeFileAtomic, writeReport, type WrittenReport } from './write.js';
export { prunePlotSpecs, renderPrunePlots, type PrunePlotRow } from './prune.js';
