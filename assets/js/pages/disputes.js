// Disputed detections: the queue of disputes beyond an org's share that wait for an
// operator, with accept and reject (and a reason kept with the decision), and every other
// dispute by status. An accepted dispute takes the detection out of the usage it was
// counted in; a rejected one stays billed. Both are billing actions.

import { api, seg } from '../api.js';
import { h, badge, fmtTime, formValues, panel, table } from '../dom.js';
import { act } from '../status.js';

const STATUSES = [
  ['awaiting_operator', 'Awaiting an operator'],
  ['accepted', 'Accepted'],
  ['rejected', 'Rejected'],
  ['withdrawn', 'Withdrawn'],
  ['', 'Every status'],
];

/** Accept and reject, with a reason, for a dispute that waits. */
function decisionForm(dispute, rerender) {
  const form = h('form', { class: 'inline decision', 'aria-label': `Decide dispute ${dispute.id}` },
    h('label', {}, 'Reason', h('input', { name: 'reason', maxlength: 200, 'aria-label': `Reason for dispute ${dispute.id}` })),
    h('button', { type: 'submit', value: 'accept', 'aria-label': `Accept dispute ${dispute.id}` }, 'Accept'),
    h('button', { type: 'submit', value: 'reject', class: 'secondary', 'aria-label': `Reject dispute ${dispute.id}` }, 'Reject'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const decision = e.submitter?.value === 'reject' ? 'reject' : 'accept';
    const reason = formValues(form).reason.trim();
    const body = reason ? { decision, reason } : { decision };
    const done = decision === 'accept' ? 'accepted: the detection left the usage' : 'rejected: the detection stays billed';
    if (await act(`Dispute ${dispute.id} ${done}.`, () => api('POST', `/v1/admin/disputes/${seg(dispute.id)}/decision`, body))) rerender();
  });
  return form;
}

const anomalyOf = (d) => [h('code', {}, d.anomaly_id), ` in ${d.source} `, h('code', {}, d.parent_id)];

export async function disputesPage(main, _params, query) {
  const status = query.get('status') ?? 'awaiting_operator';
  const org = query.get('org') || '';
  const render = async () => {
    const params = new URLSearchParams({ limit: '200' });
    if (status) params.set('status', status);
    if (org) params.set('organization_id', org);
    const list = await api('GET', `/v1/admin/disputes?${params}`);
    const filter = h('form', { class: 'inline', id: 'dispute-filter' },
      h('label', {}, 'Show', h('select', { name: 'status' }, STATUSES.map(([v, text]) =>
        h('option', { value: v, selected: v === status }, text)))),
      h('label', {}, 'Organization id', h('input', { name: 'org', value: org, placeholder: 'every organization' })),
      h('button', { type: 'submit' }, 'Filter'));
    filter.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = formValues(filter);
      const next = new URLSearchParams({ status: v.status });
      if (v.org.trim()) next.set('org', v.org.trim());
      location.hash = `#/disputes?${next}`;
    });
    main.replaceChildren(
      h('h1', {}, 'Disputes'),
      h('p', { class: 'muted' }, 'Customers dispute billed detections with a false_positive verdict. Within the plan\'s share of the period\'s detections a dispute is accepted at once; beyond it, it waits here.'),
      filter,
      panel(status ? STATUSES.find(([v]) => v === status)?.[1] || status : 'Every dispute', table([
        ['Dispute', (d) => h('code', {}, d.id)],
        ['Organization', (d) => h('a', { href: `#/orgs/${seg(d.organization_id)}` }, h('code', {}, d.organization_id))],
        ['Anomaly', anomalyOf, { narrow: true }],
        ['Filed', (d) => [fmtTime(d.filed_at), h('br'), d.filed_by], { narrow: true }],
        ['Note', (d) => d.note || ''],
        ['Status', (d) => [badge(d.status), d.decided_by ? ` by ${d.decided_by}` : '', d.reason ? ` (${d.reason})` : '']],
        ['', (d) => (d.status === 'awaiting_operator' ? decisionForm(d, render) : '')],
      ], list.items, { caption: 'Disputes', empty: 'No disputes here.', rowAttrs: (d) => ({ class: 'dispute-row', 'data-id': d.id }) })),
    );
    return 'Disputes';
  };
  return render();
}
