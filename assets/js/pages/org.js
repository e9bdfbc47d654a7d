// One organization: plan, usage gauge, quota policy, dunning, usage reset (a test
// operation), API keys, streams and monitors, and the org's billing actions.

import { api, seg } from '../api.js';
import { h, badge, fmtInt, fmtMoney, fmtTime, formValues, panel, table } from '../dom.js';
import { act } from '../status.js';

const DUNNING = ['ok', 'grace', 'past_due', 'suspended', 'cancelled'];
const BEHAVIORS = [
  ['soft_cap', 'Soft cap: refuse detections past the cap (429)'],
  ['hard_cap', 'Hard cap: refuse detections past the included amount'],
  ['allow_overage', 'Allow overage: never refuse, bill the overage'],
];

function gauge(usage) {
  const included = usage.included || 0;
  const limit = usage.limit || null;
  const top = Math.max(usage.total_calls, limit || 0, included, 1) * 1.05;
  const pct = (n) => `${Math.min(100, (n / top) * 100).toFixed(2)}%`;
  const fill = h('div', { class: `fill${usage.over_limit ? ' over' : ''}` });
  fill.style.width = pct(usage.total_calls);
  const marks = [[included, 'included'], ...(limit ? [[limit, 'cap']] : [])].map(([at, name]) => {
    const mark = h('div', { class: at / top > 0.6 ? 'mark end' : 'mark' }, h('span', {}, `${name} ${fmtInt(at)}`));
    mark.style.left = pct(at);
    return mark;
  });
  return h('div', {},
    h('div', { class: 'gauge', role: 'meter', 'aria-label': 'Detections used this period',
      'aria-valuemin': '0', 'aria-valuemax': String(limit || included), 'aria-valuenow': String(usage.total_calls),
      'aria-valuetext': `${fmtInt(usage.total_calls)} of ${fmtInt(included)} included (${usage.percent_used.toFixed(1)}%)` },
    fill, marks),
    h('p', {}, `${fmtInt(usage.total_calls)} detections of ${fmtInt(included)} included (${usage.percent_used.toFixed(1)}%)`,
      limit ? `, cap ${fmtInt(limit)}` : '', `. Overage ${fmtInt(usage.overage_calls)} = ${fmtMoney(usage.estimated_charges_cents)}.`,
      usage.over_limit ? ' Over the limit: detection calls are refused.' : ''));
}

function policyForm(orgId, policy, rerender) {
  const form = h('form', { class: 'stack', id: 'quota-policy' },
    h('label', {}, 'When the included detections run out',
      h('select', { name: 'behavior_on_exceed' }, BEHAVIORS.map(([v, text]) =>
        h('option', { value: v, selected: v === policy.behavior_on_exceed }, text)))),
    h('label', {}, 'Cap (percent of included)',
      h('input', { name: 'cap_percent', type: 'number', min: 100, max: 1000, step: 1, value: policy.cap_percent, required: true })),
    h('label', {}, 'Invoice early past (cents)',
      h('input', { name: 'invoice_threshold_cents', type: 'number', min: 0, step: 1, value: policy.invoice_threshold_cents, required: true })),
    h('label', { class: 'check' }, h('input', { name: 'alert_at_90', type: 'checkbox', checked: policy.alert_at_90 }), 'Also alert at 90%'),
    h('button', { type: 'submit' }, 'Save quota policy'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = formValues(form);
    const body = {
      behavior_on_exceed: v.behavior_on_exceed,
      cap_percent: Number(v.cap_percent),
      invoice_threshold_cents: Number(v.invoice_threshold_cents),
      alert_at_90: v.alert_at_90 === 'on',
    };
    if (await act('Quota policy saved.', () => api('PUT', `/v1/admin/orgs/${seg(orgId)}/quota-policy`, body))) rerender();
  });
  return form;
}

function dunningForm(orgId, billing, rerender) {
  const form = h('form', { class: 'stack', id: 'dunning' },
    h('label', {}, 'Set dunning state',
      h('select', { name: 'state' }, DUNNING.map((s) => h('option', { value: s, selected: s === billing.dunning_state }, s)))),
    h('label', {}, 'Note (kept in the billing actions)', h('textarea', { name: 'note', rows: 2, required: true, maxlength: 200 })),
    h('button', { type: 'submit' }, 'Change dunning state'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = formValues(form);
    if (await act(`Dunning state set to ${v.state}.`, () => api('PUT', `/v1/admin/orgs/${seg(orgId)}/dunning`, v))) rerender();
  });
  return form;
}

function resetForm(orgId, rerender) {
  const form = h('form', { class: 'stack', id: 'reset-usage' },
    h('p', {}, badge('test'), ' Zeroes this period\'s usage and alerts. Use it to test an installation; it is logged as a test operation and does not take back usage already sent to Stripe.'),
    h('label', {}, 'Reason', h('input', { name: 'note', required: true, maxlength: 200 })),
    h('button', { type: 'submit', class: 'danger' }, 'Reset usage (test operation)'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await act('Usage reset.', () => api('POST', `/v1/admin/orgs/${seg(orgId)}/usage/reset`, formValues(form)))) rerender();
  });
  return form;
}

function keysPanel(orgId, keys, shownSecret, rerender) {
  const create = h('form', { class: 'inline', id: 'create-key' },
    h('label', {}, 'Key name', h('input', { name: 'name', required: true, maxlength: 200 })),
    h('button', { type: 'submit' }, 'Create key'));
  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    const made = await act('Key created.', () => api('POST', `/v1/admin/orgs/${seg(orgId)}/keys`, formValues(create)));
    if (made) rerender(made);
  });
  const revoke = (key) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Revoke key ${key.name}`,
    onclick: async () => {
      if (await act(`Key ${key.name} revoked.`, () => api('DELETE', `/v1/admin/keys/${seg(key.id)}`))) rerender();
    } }, 'Revoke');
  return panel('API keys',
    shownSecret ? h('div', { class: 'secret', id: 'new-key' },
      h('p', {}, h('strong', {}, `New key “${shownSecret.key.name}”. `), 'Copy it now: it is shown once and never again.'),
      h('code', { id: 'new-key-secret' }, shownSecret.secret)) : null,
    table([
      ['Name', (k) => k.name],
      ['Id', (k) => h('code', {}, k.id), { narrow: true }],
      ['Created', (k) => fmtTime(k.created_at), { narrow: true }],
      ['State', (k) => (k.active ? badge('active') : badge('revoked'))],
      ['', (k) => (k.active ? revoke(k) : fmtTime(k.revoked_at))],
    ], keys.items, { caption: 'API keys', empty: 'No keys yet.' }),
    create);
}

/** The org's disputed detections: how many of each status, and what they credited. */
function disputesPanel(orgId, usage, d) {
  const queue = `#/disputes?status=awaiting_operator&org=${seg(orgId)}`;
  return panel('Disputes',
    h('dl', { class: 'figures', id: 'dispute-figures' },
      [['Accepted', d.accepted], ['Awaiting an operator', d.awaiting_operator], ['Rejected', d.rejected],
        ['Withdrawn', d.withdrawn], ['Overage credited', d.overage_credited], ['Credit still to net from Stripe batches', d.credit_to_net],
        ['Disputed out of this period', usage.disputed_detections]]
        .map(([k, v]) => [h('dt', {}, k), h('dd', {}, fmtInt(v))])),
    d.awaiting_operator ? h('p', {}, h('a', { href: queue }, `Decide the ${fmtInt(d.awaiting_operator)} waiting`)) : null);
}

export async function orgPage(main, [orgId]) {
  const render = async (shownSecret) => {
    const base = `/v1/admin/orgs/${seg(orgId)}`;
    const [org, usage, billing, keys, plans, monitors, streams, actions, disputes] = await Promise.all([
      api('GET', base),
      api('GET', `${base}/usage`),
      api('GET', `${base}/billing`),
      api('GET', `${base}/keys?limit=100`),
      api('GET', '/v1/admin/plans'),
      api('GET', `${base}/monitors?limit=100`),
      api('GET', `${base}/streams?limit=100`),
      api('GET', `/v1/admin/billing-actions?org_id=${seg(orgId)}&limit=50`),
      api('GET', `${base}/disputes/summary`),
    ]);
    const rerender = (secret) => render(secret);
    const planForm = h('form', { class: 'inline', id: 'change-plan' },
      h('label', {}, 'Plan', h('select', { name: 'plan' }, plans.items.map((p) =>
        h('option', { value: p.id, selected: p.id === org.plan }, `${p.name} (${fmtMoney(p.monthly_price_cents)}/month)`)))),
      h('button', { type: 'submit' }, 'Change plan'));
    planForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (await act('Plan changed.', () => api('PUT', `${base}/plan`, formValues(planForm)))) rerender();
    });
    main.replaceChildren(
      h('p', {}, h('a', { href: '#/orgs' }, '← Organizations')),
      h('h1', {}, org.name),
      h('p', { class: 'muted' }, h('code', {}, org.id), ` · ${org.billing_email || 'no billing email'} · created ${fmtTime(org.created_at)}`),
      h('div', { class: 'grid' },
        panel('Plan and usage', h('p', {}, 'Plan ', h('strong', { id: 'org-plan' }, org.plan)), gauge(usage), planForm),
        panel('Quota policy', policyForm(orgId, usage.policy, rerender))),
      h('div', { class: 'grid' },
        panel('Dunning',
          h('p', {}, 'State ', badge(billing.dunning_state), billing.dunning_since ? ` since ${fmtTime(billing.dunning_since)}` : ''),
          h('p', { class: 'muted' }, billing.subscription_id
            ? `Subscription ${billing.subscription_id} (${billing.subscription_status || 'unknown'})`
            : 'No Stripe subscription.'),
          dunningForm(orgId, billing, rerender)),
        panel('Reset usage', resetForm(orgId, rerender))),
      disputesPanel(orgId, usage, disputes),
      keysPanel(orgId, keys, shownSecret, rerender),
      panel('Monitors', table([
        ['Name', (m) => h('a', { href: `#/orgs/${seg(orgId)}/monitors/${seg(m.id)}` }, m.name)],
        ['Status', (m) => badge(m.status)],
        ['Points', (m) => fmtInt(m.points_seen), { num: true }],
        ['Anomalies', (m) => fmtInt(m.anomalies_seen), { num: true }],
        ['Last point', (m) => fmtTime(m.last_point_at), { narrow: true }],
      ], monitors.items, { caption: 'Monitors', empty: 'No monitors.' })),
      panel('Streams', table([
        ['Stream', (s) => h('code', {}, s.id)],
        ['Status', (s) => badge(s.status)],
        ['Events', (s) => fmtInt(s.events_seen), { num: true }],
        ['Anomalies', (s) => fmtInt(s.anomalies_seen), { num: true }],
        ['Last event', (s) => fmtTime(s.last_event_at), { narrow: true }],
      ], streams.items, { caption: 'Streams', empty: 'No streams.' })),
      panel('Billing actions', table([
        ['When', (a) => fmtTime(a.at)],
        ['Actor', (a) => a.actor, { narrow: true }],
        ['Action', (a) => [a.action, a.detail?.test_operation ? [' ', badge('test')] : null]],
        ['Detail', (a) => h('code', {}, JSON.stringify(a.detail))],
      ], actions.items, { caption: 'Billing actions', empty: 'No billing actions yet.', rowAttrs: () => ({ class: 'billing-action' }) })),
    );
    return org.name;
  };
  return render();
}
