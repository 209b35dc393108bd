// The console: renders the page its path names from the API beside it. Every value from the data goes into the
// page as text (textContent and text nodes), never as markup, so a payload holding <script> is shown, not run.
// Each page is a real URL that the query function answers with the same shell, so links are shareable and the
// browser's own navigation (back, new tab) works; the script only fills in the page.
'use strict';

(() => {
  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');
  const searchInput = document.getElementById('q');
  const KINDS = {
    orders: { label: 'Order', param: 'order_id' },
    customers: { label: 'Customer', param: 'customer_id' },
  };
  const PAGE_SIZE = 50;
  const HEX_DUMP_MAX = 64 * 1024;
  const JSON_CHILDREN_SHOWN = 200;

  // Builds an element. Attribute names come from this script only; values and children are data, and
  // children given as strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const enc = encodeURIComponent;
  const pageLink = (kind, id) => `/console/${kind}/${enc(id)}`;

  function say(text) {
    statusLine.textContent = text;
  }

  class ApiProblem extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem('api-token') || '';
    } catch (_) {
      return '';
    }
  }

  // GETs an API path; answers its body as text. A problem document becomes an ApiProblem with its detail.
  async function apiText(path) {
    const headers = { accept: 'application/json' };
    const bearer = token();
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    let response;
    try {
      response = await fetch(path, { headers, credentials: 'same-origin' });
    } catch (err) {
      throw new ApiProblem(0, `The API could not be reached: ${err.message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      let detail = '';
      try {
        // A problem document's detail; API Gateway's own refusals say it in message.
        const body = JSON.parse(text);
        detail = body.detail || body.message || body.Message || '';
      } catch (_) {
        detail = text.slice(0, 500);
      }
      throw new ApiProblem(response.status, detail || `${response.status} ${response.statusText}`);
    }
    return text;
  }

  async function api(path) {
    return JSON.parse(await apiText(path));
  }

  function showProblem(err, what) {
    const box = el('div', { class: 'error', role: 'alert' });
    const status = err.status ? `${err.status}: ` : '';
    box.append(el('strong', { text: what }), ' ', `${status}${err.message}`);
    return box;
  }

  function heading(kind, title) {
    document.title = `${kind} ${title} · Notification event log`;
    return el('h1', { tabindex: '-1' }, el('span', { class: 'kind', text: kind }), title);
  }

  function replaceMain(...children) {
    main.replaceChildren(...children);
  }

  // ---- Formatting -------------------------------------------------------------------------------------------

  function duration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
    const sign = ms < 0 ? '−' : '';
    let rest = Math.abs(ms);
    if (rest < 1000) return `${sign}${rest} ms`;
    if (rest < 60000) return `${sign}${(rest / 1000).toFixed(rest < 10000 ? 2 : 1)} s`;
    const h = Math.floor(rest / 3600000);
    rest -= h * 3600000;
    const m = Math.floor(rest / 60000);
    const s = Math.floor((rest - m * 60000) / 1000);
    return h ? `${sign}${h} h ${m} min` : `${sign}${m} min ${s} s`;
  }

  function bytesText(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  // Key and header values: text as it is, bytes (given as base64) as hex.
  function dataText(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    if (typeof value.base64 === 'string') return `0x${hex(base64Bytes(value.base64))}`;
    return JSON.stringify(value);
  }

  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // A classic hex dump: offset, 16 bytes in hex, and the printable ASCII beside them.
  function hexDump(bytes, max) {
    const lines = [];
    const end = Math.min(bytes.length, max);
    for (let offset = 0; offset < end; offset += 16) {
      const row = bytes.subarray(offset, Math.min(offset + 16, end));
      let hexPart = '';
      let ascii = '';
      for (let i = 0; i < 16; i += 1) {
        if (i === 8) hexPart += ' ';
        if (i < row.length) {
          hexPart += `${row[i].toString(16).padStart(2, '0')} `;
          ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
        } else {
          hexPart += '   ';
        }
      }
      lines.push(`${offset.toString(16).padStart(8, '0')}  ${hexPart} |${ascii}|`);
    }
    return lines.join('\n');
  }

  // ---- JSON without losing digits ----------------------------------------------------------------------------
  // JSON.parse turns 12345678901234567890 into 12345678901234567000. Payloads are shown from their exact text:
  // this parser keeps every number as written, and hands back a value too deep to show as its raw text.

  const MAX_SHOWN_DEPTH = 64;
  // A number of any length, or a literal, exactly where the parser stands (sticky).
  const LITERAL = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

  function parseExact(text) {
    let at = 0;
    const fail = (what) => {
      throw new SyntaxError(`${what} at byte ${at}`);
    };
    const space = () => {
      while (at < text.length && ' \t\r\n'.includes(text[at])) at += 1;
    };
    // Skips one value without building it (for values past MAX_SHOWN_DEPTH); answers its text.
    const skip = () => {
      const start = at;
      let depth = 0;
      do {
        const c = text[at];
        if (c === '"') {
          at += 1;
          while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
          at += 1;
        } else {
          if (c === '{' || c === '[') depth += 1;
          else if (c === '}' || c === ']') depth -= 1;
          at += 1;
          if (depth === 0 && c !== '{' && c !== '[' && c !== '}' && c !== ']') {
            while (at < text.length && !',}] \t\r\n'.includes(text[at])) at += 1;
          }
        }
      } while (depth > 0 && at < text.length);
      return { type: 'raw', text: text.slice(start, at) };
    };
    const string = () => {
      const start = at;
      at += 1;
      while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
      if (at >= text.length) fail('an unterminated string');
      at += 1;
      return JSON.parse(text.slice(start, at));
    };
    const value = (depth) => {
      space();
      const c = text[at];
      if (depth > MAX_SHOWN_DEPTH && (c === '{' || c === '[')) return skip();
      if (c === '{') {
        at += 1;
        const entries = [];
        space();
        if (text[at] === '}') {
          at += 1;
          return { type: 'object', entries };
        }
        for (;;) {
          space();
          if (text[at] !== '"') fail('a member name expected');
          const key = string();
          space();
          if (text[at] !== ':') fail('":" expected');
          at += 1;
          entries.push([key, value(depth + 1)]);
          space();
          if (text[at] === ',') at += 1;
          else if (text[at] === '}') {
            at += 1;
            return { type: 'object', entries };
          } else fail('"," or "}" expected');
        }
      }
      if (c === '[') {
        at += 1;
        const items = [];
        space();
        if (text[at] === ']') {
          at += 1;
          return { type: 'array', items };
        }
        for (;;) {
          items.push(value(depth + 1));
          space();
          if (text[at] === ',') at += 1;
          else if (text[at] === ']') {
            at += 1;
            return { type: 'array', items };
          } else fail('"," or "]" expected');
        }
      }
      if (c === '"') return { type: 'string', value: string() };
      LITERAL.lastIndex = at;
      const match = LITERAL.exec(text);
      if (!match) fail('a value expected');
      at += match[0].length;
      const literal = match[0];
      return { type: /^[-\d]/.test(literal) ? 'number' : 'literal', text: literal };
    };
    const result = value(0);
    space();
    if (at !== text.length) fail('text after the value');
    return result;
  }

  // Plain JavaScript values from a parsed tree (for the answer's own fields, which hold no long numbers).
  function plain(node) {
    switch (node.type) {
      case 'object':
        return Object.fromEntries(node.entries.map(([k, v]) => [k, plain(v)]));
      case 'array':
        return node.items.map(plain);
      case 'string':
        return node.value;
      case 'number':
        return Number(node.text);
      case 'literal':
        return JSON.parse(node.text);
      default:
        return node.text;
    }
  }

  // A collapsible tree: objects and arrays are <details>, open for the first two levels; deeper ones are built
  // when first opened, and long arrays or objects show their first members with a button for the rest.
  function jsonTree(node, name, depth) {
    const label = name === null ? [] : [el('span', { class: 'key', text: JSON.stringify(name) }), ': '];
    if (node.type === 'object' || node.type === 'array') {
      const children = node.type === 'object' ? node.entries : node.items.map((v, i) => [i, v]);
      const [open, close] = node.type === 'object' ? ['{', '}'] : ['[', ']'];
      const count = `${children.length} ${node.type === 'object' ? 'member' : 'item'}${children.length === 1 ? '' : 's'}`;
      if (children.length === 0) return el('li', {}, ...label, `${open}${close}`);
      const details = el('details', { open: depth < 2 });
      details.append(el('summary', {}, ...label, `${open} `, el('span', { class: 'muted', text: count })));
      let built = false;
      const build = () => {
        if (built) return;
        built = true;
        const list = el('ul');
        const showFrom = (start) => {
          const end = Math.min(children.length, start + JSON_CHILDREN_SHOWN);
          for (let i = start; i < end; i += 1) {
            const [key, child] = children[i];
            list.append(jsonTree(child, node.type === 'object' ? key : null, depth + 1));
          }
          if (end < children.length) {
            const more = el('button', { type: 'button', class: 'secondary', text: `Show ${children.length - end} more` });
            more.addEventListener('click', () => {
              more.closest('li').remove();
              showFrom(end);
            });
            list.append(el('li', {}, more));
          }
        };
        showFrom(0);
        details.append(list, close);
      };
      if (details.open) build();
      details.addEventListener('toggle', build);
      return el('li', {}, details);
    }
    if (node.type === 'string') return el('li', {}, ...label, el('span', { class: 'string', text: JSON.stringify(node.value) }));
    if (node.type === 'number') return el('li', {}, ...label, el('span', { class: 'number', text: node.text }));
    if (node.type === 'literal') return el('li', {}, ...label, el('span', { class: 'literal', text: node.text }));
    return el('li', {}, ...label, el('span', { class: 'muted', text: `(nested too deep to draw) ${node.text}` }));
  }

  function jsonView(node) {
    return el('div', { class: 'json', 'data-payload': 'json' }, el('ul', {}, jsonTree(node, null, 0)));
  }

  // ---- Tables of summaries -----------------------------------------------------------------------------------

  function warningsBadge(warnings) {
    if (!warnings || warnings.length === 0) return '';
    const n = warnings.length;
    return el('span', { class: 'warn', title: warnings.join('\n'), text: `⚠ ${n} warning${n === 1 ? '' : 's'}` });
  }

  function summaryRow(item) {
    const cell = (label, ...children) => el('td', { 'data-label': label }, ...children);
    return el(
      'tr',
      {},
      cell('Event time', el('span', { class: 'mono', text: item.occurred_at })),
      cell('Event type', item.event_type || el('span', { class: 'muted', text: '—' })),
      cell('Service', item.source_service || el('span', { class: 'muted', text: '—' })),
      cell('Topic', item.source_topic),
      cell('Record', el('a', { href: pageLink('records', item.id), class: 'mono', text: item.id })),
      cell('Warnings', warningsBadge(item.warnings)),
    );
  }

  function summaryTable(items, caption) {
    const head = el('tr', {}, ['Event time', 'Event type', 'Service', 'Topic', 'Record', 'Warnings'].map((h) => el('th', { scope: 'col', text: h })));
    const body = el('tbody', {}, items.map(summaryRow));
    const table = el('table', { class: 'list' }, el('caption', { class: 'skip', text: caption }), el('thead', {}, head), body);
    return { table, body };
  }

  // ---- Pages -------------------------------------------------------------------------------------------------

  async function homePage(params) {
    const q = params.get('q');
    if (!q) {
      document.title = 'Notification event log';
      replaceMain(
        el('h1', { tabindex: '-1', text: 'Find anything that happened' }),
        el('p', {}, 'Type any id in the search box: an order id, a customer id, a correlation id, or a record id (',
          el('code', { text: 'topic:partition:offset' }), '). The id is looked up in every index at once.'),
        el('ul', {},
          el('li', { text: 'An order or a customer opens its history, with filters and paging.' }),
          el('li', { text: 'A correlation opens its timeline: one lane per service, with the time between steps.' }),
          el('li', { text: 'A record opens with every field, its headers and its payload.' })),
      );
      searchInput.focus();
      return;
    }
    searchInput.value = q;
    say(`Searching for ${q}…`);
    const answer = await api(`/search?q=${enc(q)}&limit=10`);
    say('');
    const targets = {
      record: pageLink('records', q),
      order: pageLink('orders', q),
      correlation: pageLink('correlations', q),
      customer: pageLink('customers', q),
    };
    if (answer.matched.length === 1) {
      location.replace(targets[answer.matched[0]]);
      return;
    }
    const title = heading('Search', q);
    if (answer.matched.length === 0) {
      replaceMain(title, el('p', { role: 'alert' }, 'Nothing has this id: it is not a record id, an order, a correlation or a customer id that was seen. Ids are matched exactly, case included.'));
      title.focus();
      return;
    }
    const sections = [];
    const names = { order: 'Order', correlation: 'Correlation', customer: 'Customer' };
    if (answer.record) {
      sections.push(el('section', {}, el('h2', {}, el('a', { href: targets.record, text: `Record ${q}` })), summaryTable([answer.record], 'The record').table));
    }
    for (const kind of ['order', 'correlation', 'customer']) {
      const page = answer[kind];
      if (!page) continue;
      const more = page.next_cursor ? ' (first page)' : '';
      const open = kind === 'correlation' ? 'Open the timeline' : 'Open the history';
      sections.push(el('section', {},
        el('h2', {}, `${names[kind]} ${q}: ${page.items.length} notification${page.items.length === 1 ? '' : 's'}${more} `),
        el('p', {}, el('a', { href: targets[kind], text: open })),
        summaryTable(page.items, `${names[kind]} ${q}`).table));
    }
    replaceMain(title, el('p', { class: 'muted', text: `Matched as: ${answer.matched.join(', ')}` }), el('div', { class: 'results' }, sections));
    title.focus();
  }

  async function historyPage(kind, id, params) {
    const { label, param } = KINDS[kind];
    searchInput.value = id;
    const title = heading(label, id);
    const filters = el('form', { class: 'filters', method: 'get', action: pageLink(kind, id) });
    const field = (name, text, placeholder) => el('label', {}, text, el('input', { name, value: params.get(name) || '', placeholder, autocomplete: 'off' }));
    const order = el('select', { name: 'order' },
      el('option', { value: 'asc', text: 'Oldest first' }),
      el('option', { value: 'desc', text: 'Newest first' }));
    order.value = params.get('order') === 'desc' ? 'desc' : 'asc';
    filters.append(
      field('event_type', 'Event type', 'e.g. OrderShipped'),
      field('since', 'Since (RFC 3339)', '2024-05-01T00:00:00Z'),
      field('until', 'Until (RFC 3339)', '2024-05-31T23:59:59Z'),
      el('label', {}, 'Order', order),
      el('button', { type: 'submit', text: 'Apply' }),
    );
    filters.addEventListener('submit', (event) => {
      // Empty filters stay out of the link.
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(filters)) if (value && !(name === 'order' && value === 'asc')) query.set(name, value);
      location.assign(`${pageLink(kind, id)}${query.toString() ? `?${query}` : ''}`);
    });
    const query = new URLSearchParams({ [param]: id, limit: String(PAGE_SIZE) });
    for (const name of ['event_type', 'since', 'until', 'order']) if (params.get(name)) query.set(name, params.get(name));
    const count = el('p', { class: 'muted' });
    replaceMain(title, filters, count);
    title.focus();
    say('Loading…');
    let page;
    try {
      page = await api(`/notifications?${query}`);
    } catch (err) {
      say('');
      main.append(showProblem(err, 'The history could not be read.'));
      return;
    }
    say('');
    if (page.items.length === 0) {
      count.textContent = `No notifications for ${label.toLowerCase()} ${id}${params.toString() ? ' with these filters' : ''}.`;
      return;
    }
    const { table, body } = summaryTable(page.items, `Notifications of ${label.toLowerCase()} ${id}`);
    let shown = page.items.length;
    count.textContent = `${shown} notification${shown === 1 ? '' : 's'} shown`;
    main.append(table);
    let cursor = page.next_cursor;
    if (!cursor) return;
    const more = el('button', { type: 'button', class: 'more', text: 'Load more' });
    main.append(more);
    more.addEventListener('click', async () => {
      more.disabled = true;
      say('Loading more…');
      try {
        query.set('cursor', cursor);
        const next = await api(`/notifications?${query}`);
        const rows = next.items.map(summaryRow);
        body.append(...rows);
        shown += next.items.length;
        count.textContent = `${shown} notification${shown === 1 ? '' : 's'} shown`;
        say(`Loaded ${next.items.length} more.`);
        cursor = next.next_cursor;
        if (rows.length) rows[0].querySelector('a').focus();
        if (cursor) more.disabled = false;
        else more.remove();
      } catch (err) {
        say('');
        more.disabled = false;
        main.append(showProblem(err, 'The next page could not be read.'));
      }
    });
  }

  async function timelinePage(id) {
    searchInput.value = id;
    const title = heading('Correlation', id);
    replaceMain(title);
    title.focus();
    say('Loading…');
    const steps = [];
    let timeline;
    try {
      timeline = await api(`/correlations/${enc(id)}/timeline`);
    } catch (err) {
      say('');
      main.append(showProblem(err, 'The timeline could not be read.'));
      return;
    }
    say('');
    steps.push(...timeline.steps);
    const meta = el('div', { class: 'timeline-meta' });
    const lanes = el('div', { class: 'lanes', role: 'list', 'aria-label': 'Steps by service' });
    main.append(meta, lanes);
    let cursor = timeline.next_cursor;
    const more = el('button', { type: 'button', class: 'more', text: 'Load more steps' });

    const draw = () => {
      const services = [];
      for (const step of steps) {
        const service = step.source_service || '(no service)';
        if (!services.includes(service)) services.push(service);
      }
      const first = Date.parse(steps[0].occurred_at);
      const last = Date.parse(steps[steps.length - 1].occurred_at);
      meta.replaceChildren(
        el('span', {}, 'Started ', el('span', { class: 'mono', text: steps[0].occurred_at })),
        el('span', { text: `Took ${duration(last - first)}` }),
        el('span', { text: `${steps.length} step${steps.length === 1 ? '' : 's'}${cursor ? ' so far' : ''}` }),
        el('span', { text: `${services.length} service${services.length === 1 ? '' : 's'}` }),
      );
      lanes.style.gridTemplateColumns = `minmax(8rem, max-content) repeat(${services.length}, minmax(11rem, 1fr))`;
      const cells = [el('div', { class: 'lane-head', 'aria-hidden': 'true', text: 'Time' })];
      services.forEach((service, i) => {
        const head = el('div', { class: 'lane-head', 'data-lane': service, 'aria-hidden': 'true', text: service });
        head.style.gridColumn = String(i + 2);
        head.style.gridRow = '1';
        cells.push(head);
      });
      let previous = null;
      steps.forEach((step, i) => {
        const at = Date.parse(step.occurred_at);
        const gap = previous === null ? null : at - previous;
        previous = at;
        const service = step.source_service || '(no service)';
        const lane = services.indexOf(service);
        const time = el('div', { class: 'at' }, step.occurred_at.replace(/^.*T/, ''),
          el('span', { class: 'gap', text: gap === null ? 'start' : `+${duration(gap)}` }));
        time.style.gridColumn = '1';
        time.style.gridRow = String(i + 2);
        const warned = step.warnings && step.warnings.length > 0;
        const card = el('div', {
          class: warned ? 'step warned' : 'step',
          role: 'listitem',
          'data-lane': service,
          'aria-label': `Step ${i + 1} of ${steps.length}: ${step.event_type || 'no event type'} in ${service}, ${gap === null ? 'the start' : `${duration(gap)} after the previous step`}${warned ? ', with warnings' : ''}`,
        },
        el('span', { class: 'service', text: service }),
        el('a', { href: pageLink('records', step.id), text: step.event_type || '(no event type)' }),
        el('span', { class: 'id', text: step.id }),
        warningsBadge(step.warnings));
        card.style.gridColumn = String(lane + 2);
        card.style.gridRow = String(i + 2);
        cells.push(time, card);
      });
      lanes.replaceChildren(...cells);
    };
    draw();
    if (!cursor) return;
    main.append(more);
    more.addEventListener('click', async () => {
      more.disabled = true;
      say('Loading more steps…');
      try {
        const next = await api(`/correlations/${enc(id)}/timeline?cursor=${enc(cursor)}`);
        const firstNew = steps.length;
        steps.push(...next.steps);
        cursor = next.next_cursor;
        draw();
        say(`Loaded ${next.steps.length} more steps.`);
        const link = lanes.querySelectorAll('.step a')[firstNew];
        if (link) link.focus();
        if (cursor) more.disabled = false;
        else more.remove();
      } catch (err) {
        say('');
        if (err.status === 404) {
          // The page after an exactly full one can be empty: the flow has no more steps.
          cursor = null;
          more.remove();
          say('No more steps.');
          return;
        }
        more.disabled = false;
        main.append(showProblem(err, 'The next steps could not be read.'));
      }
    });
  }

  async function recordPage(id) {
    searchInput.value = id;
    const title = heading('Record', id);
    replaceMain(title);
    title.focus();
    say('Loading…');
    let tree;
    try {
      tree = parseExact(await apiText(`/notifications/${enc(id)}`));
    } catch (err) {
      say('');
      main.append(showProblem(err, 'The record could not be read.'));
      return;
    }
    say('');
    const record = plain(tree);
    const payloadNode = tree.entries.find(([k]) => k === 'payload');
    const fields = el('dl', { class: 'fields' });
    const row = (name, ...value) => fields.append(el('dt', { text: name }), el('dd', {}, ...value));
    const idLink = (kind, value) => el('a', { href: pageLink(kind, value), class: 'mono', text: value });
    row('Topic', record.source_topic);
    row('Partition', String(record.partition));
    if (record.offset !== undefined) row('Offset', String(record.offset));
    row('Event time', el('span', { class: 'mono', text: record.occurred_at }));
    row('Received', el('span', { class: 'mono', text: record.received_at }));
    if (record.kafka_timestamp !== undefined) row('Kafka timestamp', `${record.kafka_timestamp}${record.timestamp_type ? ` (${record.timestamp_type})` : ''}`);
    if (record.event_type) row('Event type', record.event_type);
    if (record.order_id) row('Order', idLink('orders', record.order_id));
    if (record.correlation_id) row('Correlation', idLink('correlations', record.correlation_id));
    if (record.customer_id) row('Customer', idLink('customers', record.customer_id));
    if (record.source_service) row('Service', record.source_service);
    if (record.event_id) row('Event id', el('span', { class: 'mono', text: record.event_id }));
    if (record.change) {
      const change = record.change;
      const verbs = { c: 'create', u: 'update', d: 'delete', r: 'read (snapshot)', t: 'truncate', m: 'message' };
      const parts = [`${verbs[change.op] || change.op} (op ${change.op})`];
      if (change.table) parts.push(`on ${change.table}`);
      if (change.connector) parts.push(`by ${change.connector}`);
      row('Change', parts.join(' '));
      if (change.changed_at) row('Changed at', el('span', { class: 'mono', text: change.changed_at }));
    }
    if (record.key !== undefined) row('Key', el('span', { class: 'mono', text: dataText(record.key) }));
    row('Payload format', record.payload_format);
    row('Payload size', `${bytesText(record.payload_size)} (${record.payload_size} bytes)`);
    if (record.payload_sha256) row('Payload SHA-256', el('span', { class: 'mono', text: record.payload_sha256 }));
    const schemaText = (schema) => [schema.registry, schema.kind, schema.id, schema.name].filter(Boolean).join(' · ');
    if (record.schema) row('Schema', el('span', { class: 'mono', text: schemaText(record.schema) }));
    else if (record.schema_id !== undefined) row('Schema id', String(record.schema_id));
    if (record.key_schema) row('Key schema', el('span', { class: 'mono', text: schemaText(record.key_schema) }));
    if (record.warnings && record.warnings.length) {
      row('Warnings', el('ul', { class: 'warnings' }, record.warnings.map((w) => el('li', {}, el('span', { class: 'warn', text: '⚠' }), ' ', w))));
    }
    main.append(fields);

    main.append(el('h2', { text: `Headers (${record.headers.length})` }));
    if (record.headers.length) {
      const head = el('tr', {}, el('th', { scope: 'col', text: 'Name' }), el('th', { scope: 'col', text: 'Value' }));
      const body = el('tbody', {}, record.headers.map((h) => el('tr', {},
        el('td', { 'data-label': 'Name', class: 'mono', text: h.name }),
        el('td', { 'data-label': 'Value', class: 'mono', text: dataText(h.value) }))));
      main.append(el('table', { class: 'list' }, el('thead', {}, head), body));
    } else {
      main.append(el('p', { class: 'muted', text: 'No headers.' }));
    }

    // A registry-framed value (Avro, Protobuf, JSON Schema) decoded with its schema, beside its exact bytes.
    for (const [name, title] of [['decoded', 'Decoded value'], ['decoded_key', 'Decoded key']]) {
      const node = tree.entries.find(([k]) => k === name);
      if (!node) continue;
      main.append(el('h2', { text: title }));
      const view = jsonView(node[1]);
      view.removeAttribute('data-payload');
      view.setAttribute('data-decoded', name);
      main.append(view);
    }

    main.append(el('h2', { text: 'Payload' }));
    const encoding = record.payload_encoding;
    const download = downloadLink(id, record);
    const bar = el('div', { class: 'payload-bar' }, el('span', { class: 'muted', text: `Shown as ${encoding}` }));
    if (encoding !== 'none') bar.append(download);
    main.append(bar);
    if (encoding === 'json') {
      main.append(jsonView(payloadNode[1]));
    } else if (encoding === 'text') {
      main.append(el('pre', { 'data-payload': 'text', text: record.payload }));
    } else if (encoding === 'base64') {
      const bytes = base64Bytes(record.payload);
      main.append(el('pre', { class: 'hex', 'data-payload': 'hex', text: hexDump(bytes, HEX_DUMP_MAX) }));
      if (bytes.length > HEX_DUMP_MAX) main.append(el('p', { class: 'muted', text: `The first ${HEX_DUMP_MAX} of ${bytes.length} bytes are shown; download for all of them.` }));
    } else if (encoding === 'url') {
      main.append(el('p', { 'data-payload': 'url' }, `The payload is too large to show here (${bytesText(record.payload_size)}). `, el('a', { href: safeUrl(record.payload), text: 'Open its exact bytes' })));
    } else {
      main.append(el('p', { 'data-payload': 'none', text: 'A tombstone: this record has no payload.' }));
    }
  }

  // A link the API gave: this origin's paths, or an https URL (a presigned S3 URL). Anything else is refused.
  function safeUrl(url) {
    if (typeof url !== 'string') return '#';
    let parsed;
    try {
      parsed = new URL(url, location.origin);
    } catch (_) {
      return '#';
    }
    return parsed.origin === location.origin || parsed.protocol === 'https:' ? parsed.href : '#';
  }

  // The payload's exact bytes as a download. Without a token it is a plain link. With one (an API behind a JWT
  // authorizer), a link would go without it: the bytes are fetched with the token and saved from memory.
  function downloadLink(id, record) {
    // The name the API gives the file too: characters file systems dislike become "_".
    const name = `${id.replace(/[^A-Za-z0-9.-]/g, '_')}.bin`;
    if (record.payload_encoding === 'url' && /^https:/.test(safeUrl(record.payload))) {
      // A presigned S3 URL: it needs no token.
      return el('a', { class: 'button-link', href: safeUrl(record.payload), download: name, text: 'Download the raw bytes' });
    }
    const path = `/notifications/${enc(id)}/payload`;
    const link = el('a', { class: 'button-link', href: path, download: name, text: 'Download the raw bytes' });
    link.addEventListener('click', async (event) => {
      const bearer = token();
      if (!bearer) return;
      event.preventDefault();
      say('Downloading…');
      try {
        const response = await fetch(path, { headers: { authorization: `Bearer ${bearer}` } });
        if (!response.ok) throw new ApiProblem(response.status, `${response.status} ${response.statusText}`);
        const url = URL.createObjectURL(await response.blob());
        const save = el('a', { href: url, download: name });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
        say('Downloaded.');
      } catch (err) {
        say('');
        main.append(showProblem(err, 'The payload could not be downloaded.'));
      }
    });
    return link;
  }

  // ---- Start -------------------------------------------------------------------------------------------------

  function setUpToken() {
    const form = document.getElementById('token-form');
    const input = document.getElementById('token');
    const clear = document.getElementById('token-clear');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      try {
        sessionStorage.setItem('api-token', input.value.trim());
      } catch (_) { /* storage refused: the token is not kept */ }
      input.value = '';
      // Start the page again with the token, so that nothing loaded without it lands on the new page.
      location.reload();
    });
    clear.addEventListener('click', () => {
      try {
        sessionStorage.removeItem('api-token');
      } catch (_) { /* nothing kept */ }
      say('The token is forgotten.');
    });
  }

  async function route() {
    const parts = location.pathname.split('/').filter(Boolean);
    const params = new URLSearchParams(location.search);
    try {
      if (parts.length <= 1) {
        await homePage(params);
      } else if (parts.length >= 3) {
        const kind = parts[1];
        // An id may hold a "/" (written %2F in links; the rest of the path either way).
        const id = decodeURIComponent(parts.slice(2).join('/'));
        if (kind in KINDS) await historyPage(kind, id, params);
        else if (kind === 'correlations') await timelinePage(id);
        else if (kind === 'records') await recordPage(id);
      }
    } catch (err) {
      say('');
      main.append(showProblem(err, 'The page could not be shown.'));
    }
  }

  setUpToken();
  route();
})();
