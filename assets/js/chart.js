// Charts, drawn by uPlot (vendored under assets/vendor/, see its VERSION file). Two kinds:
// detections per day (bars) and a monitor's series with its anomalies marked.

import uPlot from '../vendor/uplot-1.6.32/uPlot.esm.js';

const ACCENT = '#1f4e79';
const ANOMALY = '#e4572e';

function widthOf(el) {
  return Math.max(280, el.clientWidth || el.parentElement?.clientWidth || 600);
}

/** Redraws at the container's width when it changes (phones rotate, windows resize). */
function fitWidth(plot, el) {
  const observer = new ResizeObserver(() => plot.setSize({ width: widthOf(el), height: plot.height }));
  observer.observe(el);
}

/** Bars of detections per day: `days` as `YYYY-MM-DD`. */
export function dailyBars(el, days, counts) {
  const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const plot = new uPlot({
    width: widthOf(el),
    height: 240,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { label: 'Detections', size: 70 }],
    series: [
      { label: 'Day', value: (u, v) => (v == null ? '—' : new Date(v * 1000).toISOString().slice(0, 10)) },
      { label: 'Detections', stroke: ACCENT, fill: 'rgba(31,78,121,0.55)', paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false } },
    ],
  }, [xs, counts], el);
  fitWidth(plot, el);
  return plot;
}

/**
 * A monitor's values over time with each anomaly marked by a red point. `onPick(index)` is
 * called with the index of the point under the cursor when it is clicked.
 */
export function seriesWithAnomalies(el, points, onPick) {
  const xs = points.map((p) => Date.parse(p.timestamp) / 1000);
  const values = points.map((p) => p.value);
  const marks = points.map((p) => (p.anomaly ? p.value : null));
  const plot = new uPlot({
    width: widthOf(el),
    height: 320,
    scales: { x: { time: true } },
    axes: [{}, { label: 'Value', size: 70 }],
    cursor: { points: { size: 8 } },
    series: [
      {},
      { label: 'Value', stroke: ACCENT, width: 1.5, points: { show: false } },
      {
        label: 'Anomaly', stroke: ANOMALY, fill: ANOMALY, paths: () => null,
        points: { show: true, size: 10, width: 2, stroke: ANOMALY, fill: ANOMALY },
      },
    ],
  }, [xs, values, marks], el);
  el.dataset.anomalies = String(marks.filter((m) => m !== null).length);
  plot.over.addEventListener('click', () => {
    if (plot.cursor.idx != null) onPick(plot.cursor.idx);
  });
  fitWidth(plot, el);
  return plot;
}

/** Moves the chart's cursor onto point `index` (when picked from the anomaly table). */
export function pointAt(plot, index) {
  const x = plot.data[0][index];
  const y = plot.data[1][index];
  plot.setCursor({ left: plot.valToPos(x, 'x'), top: plot.valToPos(y, 'y') });
}
