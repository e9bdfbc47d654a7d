// Billing operations: Stripe events received, the invoice mirror, and the Stripe and email
// outboxes with a retry for anything that failed; the background workers' state.

import { api, seg } from '../api.js';
import { h, badge, fmtInt, fmtMoney, fmtTime, panel, table } from '../dom.js';
import { act } from '../status.js';

export async function billingPage(main) {
  const render = async () => {
    const [events, invoices, meter, emails, workers] = await Promise.all([
      api('GET', '/v1/admin/stripe/events?limit=100'),
      api('GET', '/v1/admin/invoices?limit=100'),
      api('GET', '/v1/admin/outbox/stripe?limit=100'),
      api('GET', '/v1/admin/outbox/email?limit=200'),
      api('GET', '/v1/admin/workers'),
    ]);
    const retry = (label, path) => h('button', { type: 'button', class: 'secondary', 'aria-label': label,
      onclick: async () => {
        if (await act(`${label}: queued again.`, () => api('POST', path))) render();
      } }, 'Retry');
    const org = (id) => (id ? h('a', { href: `#/orgs/${seg(id)}` }, h('code', {}, id)) : '—');
    main.replaceChildren(
      h('h1', {}, 'Billing'),
      panel('Stripe events received', table([
        ['Type', (e) => e.type],
        ['Event', (e) => h('code', {}, e.id), { narrow: true }],
        ['Organization', (e) => org(e.organization_id), { narrow: true }],
        ['Status', (e) => [badge(e.status), ' ', e.outcome]],
        ['Error', (e) => e.error || ''],
        ['Received', (e) => fmtTime(e.received_at), { narrow: true }],
      ], events.items, { caption: 'Stripe events', empty: 'No Stripe events received yet.' })),
      panel('Invoices', table([
        ['Invoice', (i) => i.invoice.number || i.invoice.id],
        ['Organization', (i) => org(i.organization_id)],
        ['Status', (i) => badge(i.invoice.status)],
        ['Due', (i) => fmtMoney(i.invoice.amount_due), { num: true }],
        ['Paid', (i) => fmtMoney(i.invoice.amount_paid), { num: true }],
        ['Created', (i) => fmtTime(i.invoice.created), { narrow: true }],
      ], invoices.items, { caption: 'Invoices', empty: 'No invoices mirrored yet.' })),
      panel('Usage outbox to Stripe', table([
        ['Batch', (r) => r.id, { num: true }],
        ['Organization', (r) => org(r.organization_id)],
        ['Detections', (r) => fmtInt(r.value), { num: true }],
        ['Status', (r) => badge(r.status)],
        ['Attempts', (r) => r.attempts, { num: true }],
        ['Last error', (r) => r.last_error || '', { narrow: true }],
        ['', (r) => (r.status === 'failed' ? retry(`Retry usage batch ${r.id}`, `/v1/admin/outbox/stripe/${r.id}/retry`) : '')],
      ], meter.items, { caption: 'Usage outbox', empty: 'No usage batches.' })),
      panel('Email outbox', table([
        ['Email', (m) => m.id, { num: true }],
        ['Kind', (m) => m.kind],
        ['To', (m) => m.to || '—', { narrow: true }],
        ['Status', (m) => badge(m.status)],
        ['Attempts', (m) => m.attempts, { num: true }],
        ['Last error', (m) => m.last_error || '', { narrow: true }],
        ['', (m) => (m.status === 'failed' ? retry(`Retry email ${m.id}`, `/v1/admin/outbox/email/${m.id}/retry`) : '')],
      ], emails.items, { caption: 'Email outbox', empty: 'No email queued yet.' })),
      panel('Background workers', table([
        ['Worker', (w) => w.name],
        ['State', (w) => badge(w.state)],
        ['Passes', (w) => fmtInt(w.passes), { num: true }],
        ['Errors', (w) => fmtInt(w.errors), { num: true }],
        ['Last error', (w) => w.last_error || '', { narrow: true }],
      ], workers.items, { caption: 'Workers' })),
    );
    return 'Billing';
  };
  return render();
}
