// Overview: the runbook's key figures for the current period and detections per day.

import { api } from '../api.js';
import { dailyBars } from '../chart.js';
import { h, fmtInt, fmtMoney, fmtTime, panel, table } from '../dom.js';

const card = (label, value, alert = false) =>
  h('div', { class: `card${alert ? ' alert' : ''}` }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));

export async function overviewPage(main) {
  const o = await api('GET', '/v1/admin/overview');
  const active = o.plans.reduce((n, p) => n + p.active_subscriptions, 0);
  const chart = h('div', { class: 'chart', id: 'daily-chart', role: 'img',
    'aria-label': `Detections per day over the last ${o.detections_per_day.length} days` });
  main.replaceChildren(
    h('h1', {}, 'Overview'),
    h('p', { class: 'muted' }, `Billing period ${fmtTime(o.period_start)} to ${fmtTime(o.period_end)}`),
    h('div', { class: 'cards' },
      card('Active subscriptions', fmtInt(active)),
      card('Detections this month', fmtInt(o.detections)),
      card('Overage detections', fmtInt(o.overage_detections)),
      card('Overage', fmtMoney(o.overage_cents)),
      card('Estimated revenue', fmtMoney(o.estimated_revenue_cents)),
      card('Orgs in dunning', fmtInt(o.orgs_in_dunning), o.orgs_in_dunning > 0),
      card('Webhook failures', fmtInt(o.webhook_failures), o.webhook_failures > 0),
      card('Email failures', fmtInt(o.email_failures), o.email_failures > 0),
      card('Stripe usage failures', fmtInt(o.stripe_meter_failures), o.stripe_meter_failures > 0),
      card('Stripe events failed', fmtInt(o.stripe_event_failures), o.stripe_event_failures > 0)),
    panel('Detections per day', chart),
    panel('Subscriptions by plan', table([
      ['Plan', (p) => p.plan],
      ['Organizations', (p) => fmtInt(p.organizations), { num: true }],
      ['Active subscriptions', (p) => fmtInt(p.active_subscriptions), { num: true }],
      ['Detections', (p) => fmtInt(p.detections), { num: true }],
      ['Overage', (p) => fmtMoney(p.overage_cents), { num: true }],
      ['Estimated revenue', (p) => fmtMoney(p.estimated_revenue_cents), { num: true }],
    ], o.plans, { caption: 'Subscriptions by plan' })),
  );
  dailyBars(chart, o.detections_per_day.map((d) => d.day), o.detections_per_day.map((d) => d.detections));
  return 'Overview';
}
