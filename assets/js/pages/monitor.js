// A monitor: its chart with anomalies marked, and each anomaly's explanation (on click in
// the chart, or from the table, which keyboard users reach with Tab).

import { api, seg } from '../api.js';
import { pointAt, seriesWithAnomalies } from '../chart.js';
import { h, badge, fmtInt, fmtTime, panel, table } from '../dom.js';

const num = (v, digits = 3) => (v === undefined || v === null ? '—' : Number(v).toFixed(digits));

/** "acknowledged by key:key_1 at ... (note)" for an anomaly's status. */
function statusOf(anomaly) {
  const parts = [anomaly.status];
  if (anomaly.status_changed_by) parts.push(`by ${anomaly.status_changed_by}`);
  if (anomaly.status_changed_at) parts.push(`at ${fmtTime(anomaly.status_changed_at)}`);
  if (anomaly.status_note) parts.push(`(${anomaly.status_note})`);
  return parts.join(' ');
}

/** "false_positive by key:key_1 at ... (note); dispute dp_3 accepted; rule mr_1". */
function feedbackOf(anomaly) {
  if (!anomaly.verdict) return 'none yet';
  const parts = [anomaly.verdict];
  if (anomaly.verdict_by) parts.push(`by ${anomaly.verdict_by}`);
  if (anomaly.verdict_at) parts.push(`at ${fmtTime(anomaly.verdict_at)}`);
  if (anomaly.verdict_note) parts.push(`(${anomaly.verdict_note})`);
  let text = parts.join(' ');
  if (anomaly.dispute_id) text += `; dispute ${anomaly.dispute_id} ${anomaly.dispute_status}`;
  if (anomaly.rule_id) text += `; rule ${anomaly.rule_id}`;
  return text;
}

function explanationOf(anomaly) {
  const e = anomaly.explanation;
  const rows = [
    ['Anomaly', anomaly.id],
    ['Status', statusOf(anomaly)],
    ['Feedback', feedbackOf(anomaly)],
    ['When', fmtTime(anomaly.timestamp)],
    ['Value', num(anomaly.value, 4)],
    ['Expected range', e.expected_low !== undefined ? `${num(e.expected_low, 4)} to ${num(e.expected_high, 4)}` : '—'],
    ['Score', num(e.score)],
    ['p-value', e.p_value !== undefined ? Number(e.p_value).toExponential(2) : '—'],
    ['Confidence', num(e.confidence)],
    ['Signal', e.detector || '—'],
    ['Compression ratio (baseline → window)', `${num(e.baseline_compression_ratio)} → ${num(e.window_compression_ratio)}`],
    ['NCD', num(e.ncd)],
    ['Conditional cost (bits/symbol)', `${num(e.conditional_cost_bits_per_symbol)} vs baseline ${num(e.baseline_cost_bits_per_symbol)}`],
    ['Entropy change', num(e.entropy_delta)],
  ];
  return h('div', { class: 'explain', id: 'explanation', tabindex: '-1' },
    h('p', {}, h('strong', {}, e.summary)),
    h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}

export async function monitorPage(main, [orgId, monitorId]) {
  const base = `/v1/admin/orgs/${seg(orgId)}/monitors/${seg(monitorId)}`;
  const [monitors, series, anomalies] = await Promise.all([
    api('GET', `/v1/admin/orgs/${seg(orgId)}/monitors?limit=500`),
    api('GET', `${base}/series?max_points=2000`),
    api('GET', `${base}/anomalies?limit=500`),
  ]);
  const monitor = monitors.items.find((m) => m.id === monitorId);
  const name = monitor ? monitor.name : monitorId;
  const detail = h('div', { 'aria-live': 'polite' },
    h('p', { class: 'muted' }, 'Click a marked point, or pick an anomaly below, to see why it was flagged.'));
  const byTime = new Map(anomalies.items.map((a) => [Date.parse(a.timestamp) / 1000, a]));
  const chartEl = h('div', { class: 'chart', id: 'monitor-chart', role: 'img',
    'aria-label': `${name}: ${series.points.length} points with ${anomalies.items.length} anomalies marked in red` });
  let plot = null;
  const show = (anomaly, row) => {
    detail.replaceChildren(explanationOf(anomaly));
    for (const tr of main.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    row?.classList.add('selected');
  };
  const list = table([
    ['When', (a) => h('button', { type: 'button', class: 'link', 'data-seq': a.seq,
      onclick: (ev) => {
        show(a, ev.target.closest('tr'));
        const index = plot?.data[0].indexOf(Date.parse(a.timestamp) / 1000);
        if (plot && index >= 0) pointAt(plot, index);
      } }, fmtTime(a.timestamp))],
    ['Value', (a) => num(a.value, 4), { num: true }],
    ['Score', (a) => num(a.score), { num: true }],
    ['Episode', (a) => a.episode, { num: true, narrow: true }],
    ['Status', (a) => badge(a.status)],
    ['Feedback', (a) => (a.verdict ? [badge(a.verdict), a.dispute_status ? [' ', badge(a.dispute_status)] : null] : '—'), { narrow: true }],
    ['Why', (a) => a.explanation.summary, { narrow: true }],
  ], anomalies.items, { caption: 'Anomalies', empty: 'No anomalies stored for this monitor.', rowAttrs: () => ({ class: 'anomaly-row' }) });
  main.replaceChildren(
    h('p', {}, h('a', { href: `#/orgs/${seg(orgId)}` }, '← Organization')),
    h('h1', {}, name),
    h('p', { class: 'muted' }, monitor ? [badge(monitor.status), ` ${fmtInt(monitor.points_seen)} points, ${fmtInt(monitor.anomalies_seen)} anomalies`] : null,
      series.downsampled ? ' (chart downsampled; each bucket keeps its highest-scoring point)' : ''),
    panel('Series', series.points.length ? chartEl : h('p', { class: 'muted' }, 'No points yet.'), detail),
    panel('Anomalies', list),
  );
  if (series.points.length) {
    plot = seriesWithAnomalies(chartEl, series.points, (index) => {
      const anomaly = byTime.get(plot.data[0][index]);
      if (anomaly) show(anomaly, main.querySelector(`button[data-seq="${anomaly.seq}"]`)?.closest('tr'));
    });
  }
  return name;
}
