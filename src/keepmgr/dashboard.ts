/**
 * The daemon's dashboard: one static page and one script, no build step. It reads the same
 * API as every client (so it needs a token: `#token=...` in the URL, or typed into the page)
 * and renders with textContent only, so nothing a Keep or a client sends becomes markup.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>enarx keep manager</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; }
th { background: #f3f3f5; }
.state-running, .state-ready, .state-challenged { color: #0a7d28; font-weight: 600; }
.state-stopped, .state-exited { color: #666; }
.state-crashed, .state-killed, .state-lost, .state-refused { color: #b00020; font-weight: 600; }
#status { color: #666; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>enarx keep manager</h1>
<div id="capacity"></div>
<form id="login" hidden><label>API token <input id="token" type="password" autocomplete="off"></label> <button>Show Keeps</button></form>
<p id="status">loading…</p>
<table id="keeps" hidden>
<thead><tr><th>Keep</th><th>Owner</th><th>State</th><th>Backend</th><th>Evidence</th><th>Client verdict</th><th>Memory</th><th>CPU</th><th>FDs</th><th>Created</th><th>Reason</th><th></th></tr></thead>
<tbody></tbody>
</table>
<script src="/dashboard.js"></script>
</body>
</html>
`;

export const DASHBOARD_JS = `'use strict';
(function () {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) { sessionStorage.setItem('keepmgr-token', fromHash); history.replaceState(null, '', location.pathname); }
  let token = sessionStorage.getItem('keepmgr-token');
  const $ = (id) => document.getElementById(id);
  const status = $('status');
  function api(path, init) {
    return fetch('/api/v1' + path, Object.assign({}, init, { headers: { authorization: 'Bearer ' + token, accept: 'application/json' } }));
  }
  function cell(row, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); return td; }
  function mib(bytes) { return bytes == null ? '' : (bytes / 1048576).toFixed(1) + ' MiB'; }
  function verdict(v) { if (!v) return 'not reported'; return (v.accepted ? 'accepted' : 'refused') + (v.reasons.length ? ': ' + v.reasons.join('; ') : ''); }
  async function refresh() {
    if (!token) { $('login').hidden = false; status.textContent = 'enter an API token'; return; }
    let res;
    try { res = await api('/keeps'); } catch (e) { status.textContent = 'keep manager unreachable: ' + e.message; return; }
    if (res.status === 401) { token = null; sessionStorage.removeItem('keepmgr-token'); return refresh(); }
    if (!res.ok) { status.textContent = 'error ' + res.status; return; }
    const { keeps } = await res.json();
    const c = await (await api('/contracts')).json();
    const cap = c.contracts[0].capacity;
    $('capacity').textContent = 'backend ' + c.contracts[0].backend + ' (' + c.contracts[0].evidence + ' evidence) · ' + cap.live + ' of ' + cap.maxKeeps + ' Keeps live · warm pool ' + cap.pool.warm + '/' + cap.pool.size + ' · memory ' + cap.memoryCommittedMiB + '/' + cap.memoryBudgetMiB + ' MiB committed';
    const body = $('keeps').querySelector('tbody');
    body.replaceChildren();
    for (const k of keeps) {
      const row = document.createElement('tr');
      row.dataset.keep = k.id;
      row.dataset.state = k.state;
      const idc = cell(row, ''); const code = document.createElement('code'); code.textContent = k.id; idc.appendChild(code);
      cell(row, k.owner);
      cell(row, k.state, 'state state-' + k.state);
      cell(row, k.backend + ' (' + k.origin + ')');
      cell(row, k.attestation.kind || '');
      cell(row, verdict(k.attestation.verdict), 'verdict');
      cell(row, k.usage ? mib(k.usage.rssBytes) + ' / ' + k.limits.memoryMiB + ' MiB' : '');
      cell(row, k.usage ? (k.usage.cpuMs / 1000).toFixed(2) + ' s / ' + k.limits.cpuSeconds + ' s' : '');
      cell(row, k.usage ? k.usage.descriptors + ' / ' + k.limits.descriptors : '');
      cell(row, new Date(k.createdAt).toLocaleTimeString());
      cell(row, k.reason || '');
      const act = cell(row, '');
      if (['starting', 'ready', 'challenged', 'running'].includes(k.state)) {
        const b = document.createElement('button');
        b.textContent = 'Stop';
        b.className = 'stop';
        b.onclick = async () => { b.disabled = true; await api('/keeps/' + k.id + '/stop', { method: 'POST' }); refresh(); };
        act.appendChild(b);
      }
      body.appendChild(row);
    }
    $('keeps').hidden = false;
    $('login').hidden = true;
    status.textContent = keeps.length + ' Keep' + (keeps.length === 1 ? '' : 's') + ' · updated ' + new Date().toLocaleTimeString();
  }
  $('login').onsubmit = (e) => { e.preventDefault(); token = $('token').value; sessionStorage.setItem('keepmgr-token', token); refresh(); };
  refresh();
  setInterval(refresh, 1000);
})();
`;
