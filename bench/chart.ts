/** One line of a panel: a name and its [x, y] points. */
export interface Series {
  name: string;
  points: [number, number][];
}

export interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const COLOURS = ['#0b7285', '#e8590c', '#5f3dc4', '#2b8a3e', '#c2255c'];
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round step for about five ticks up to `max`. */
function tickStep(max: number): number {
  const raw = Math.max(max, 1) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) ?? raw);
}

/** Line charts side by side, one per panel, sharing a legend: an SVG document. */
export function lineChartSvg(panels: Panel[], heading: string, yMax: number): string {
  const width = 300;
  const height = 220;
  const margin = { left: 48, right: 12, top: 28, bottom: 36 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const names = [...new Set(panels.flatMap((panel) => panel.series.map((series) => series.name)))];
  const colour = (name: string) => COLOURS[names.indexOf(name) % COLOURS.length]!;
  const parts: string[] = [];
  panels.forEach((panel, index) => {
    const x0 = index * width;
    const xMax = Math.max(1, ...panel.series.flatMap((series) => series.points.map(([x]) => x)));
    const sx = (x: number) => x0 + margin.left + (x / xMax) * plotW;
    const sy = (y: number) => margin.top + plotH - (y / Math.max(yMax, 1)) * plotH + 30;
    parts.push(`<text x="${x0 + margin.left + plotW / 2}" y="${margin.top + 22}" text-anchor="middle" font-weight="bold">${escape(panel.title)}</text>`);
    parts.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(xMax)}" y2="${sy(0)}" stroke="#495057"/>`);
    parts.push(`<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(0)}" y2="${sy(yMax)}" stroke="#495057"/>`);
    for (let x = 0, step = tickStep(xMax); x <= xMax + 1e-9; x += step) {
      parts.push(`<text x="${sx(x)}" y="${sy(0) + 14}" text-anchor="middle" font-size="10">${Math.round(x)}</text>`);
    }
    for (let y = 0, step = tickStep(yMax); y <= yMax + 1e-9; y += step) {
      parts.push(`<line x1="${sx(0) - 3}" y1="${sy(y)}" x2="${sx(xMax)}" y2="${sy(y)}" stroke="#e9ecef"/>`);
      parts.push(`<text x="${sx(0) - 5}" y="${sy(y) + 3}" text-anchor="end" font-size="10">${y}</text>`);
    }
    parts.push(`<text x="${sx(xMax / 2)}" y="${sy(0) + 28}" text-anchor="middle" font-size="10">seconds</text>`);
    parts.push(`<text x="${x0 + 12}" y="${sy(yMax / 2)}" font-size="10" transform="rotate(-90 ${x0 + 12} ${sy(yMax / 2)})" text-anchor="middle">${escape(panel.yLabel)}</text>`);
    for (const series of panel.series) {
      if (series.points.length === 0) continue;
      const d = series.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${colour(series.name)}" stroke-width="1.8"/>`);
    }
  });
  const legend = names
    .map((name, i) => `<rect x="${12 + i * 130}" y="8" width="12" height="12" fill="${colour(name)}"/><text x="${28 + i * 130}" y="18">${escape(name)}</text>`)
    .join('');
  const totalWidth = panels.length * width;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalWidth}" height="${height + 40}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${totalWidth - 12}" y="18" text-anchor="end" font-size="11" fill="#495057">${escape(heading)}</text>`,
    legend,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
