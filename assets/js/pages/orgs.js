// Organizations: search, list (paged) and create.

import { api, seg } from '../api.js';
import { h, fmtTime, formValues, panel, table } from '../dom.js';
import { act } from '../status.js';

export async function orgsPage(main, _params, query) {
  const q = query.get('q') || '';
  const cursor = query.get('cursor');
  const params = new URLSearchParams({ limit: '50' });
  if (q) params.set('q', q);
  if (cursor) params.set('cursor', cursor);
  const [page, plans] = await Promise.all([
    api('GET', `/v1/admin/orgs?${params}`),
    api('GET', '/v1/admin/plans'),
  ]);

  const search = h('form', { class: 'inline', role: 'search' },
    h('label', {}, 'Search organizations', h('input', { name: 'q', type: 'search', value: q, placeholder: 'name, id or email' })),
    h('button', { type: 'submit' }, 'Search'));
  search.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = formValues(search).q.trim();
    location.hash = value ? `#/orgs?q=${encodeURIComponent(value)}` : '#/orgs';
  });

  const create = h('form', { class: 'inline', id: 'create-org' },
    h('label', {}, 'Name', h('input', { name: 'name', required: true, maxlength: 200 })),
    h('label', {}, 'Billing email', h('input', { name: 'billing_email', type: 'email' })),
    h('label', {}, 'Plan', h('select', { name: 'plan' }, plans.items.map((p) => h('option', { value: p.id }, p.name)))),
    h('button', { type: 'submit' }, 'Create organization'));
  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = formValues(create);
    const body = { name: v.name, plan: v.plan };
    if (v.billing_email) body.billing_email = v.billing_email;
    const org = await act(`Created ${v.name}.`, () => api('POST', '/v1/admin/orgs', body));
    if (org) location.hash = `#/orgs/${seg(org.id)}`;
  });

  const next = page.next_cursor
    ? h('p', { class: 'pager' }, h('a', { href: `#/orgs?${new URLSearchParams({ ...(q ? { q } : {}), cursor: page.next_cursor })}` }, 'Next page'))
    : null;
  main.replaceChildren(
    h('h1', {}, 'Organizations'),
    panel('Find', search),
    panel(q ? `Matching “${q}”` : 'All organizations',
      table([
        ['Name', (o) => h('a', { href: `#/orgs/${seg(o.id)}` }, o.name)],
        ['Id', (o) => h('code', {}, o.id), { narrow: true }],
        ['Plan', (o) => o.plan],
        ['Billing email', (o) => o.billing_email || '—', { narrow: true }],
        ['Created', (o) => fmtTime(o.created_at), { narrow: true }],
      ], page.items, { caption: 'Organizations', empty: q ? 'No organization matches.' : 'No organizations yet.' }),
      next),
    panel('New organization', create),
  );
  return 'Organizations';
}
