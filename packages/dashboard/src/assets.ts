/**
 * The dashboard's only script and style sheet, served by the router itself: nothing is fetched from
 * elsewhere, and the Content-Security-Policy allows no inline script or style.
 */
export const DASHBOARD_CSS = `:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d232b;--muted:#5b6675;--card:#fff;--line:#d9dee5;--high:#b42318;--medium:#b54708;--low:#175cd3;--ok:#067647}
@media (prefers-color-scheme:dark){:root{--bg:#11151a;--fg:#e6e9ee;--muted:#9aa5b4;--card:#1a2027;--line:#2d3540;--high:#f97066;--medium:#fdb022;--low:#84adff;--ok:#47cd89}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:12px 24px;align-items:center;justify-content:space-between;padding:14px 24px;background:var(--card);border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
header .meta{color:var(--muted);margin:0}
header form{margin:0}
main{padding:20px 24px;display:grid;gap:20px;max-width:1400px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;overflow-x:auto}
section h2{font-size:15px;margin:0 0 10px}
.grid{display:grid;gap:20px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.mono{white-space:nowrap}
td.details{white-space:normal;overflow-wrap:anywhere;min-width:260px}
td time{white-space:nowrap}
.empty,.unavailable{color:var(--muted);margin:0}
.unavailable{color:var(--medium)}
.sev{display:inline-block;min-width:60px;padding:1px 8px;border-radius:10px;border:1px solid currentColor;font-size:12px;text-align:center}
.sev-high{color:var(--high)}.sev-medium{color:var(--medium)}.sev-low{color:var(--low)}.sev-info,.sev-other{color:var(--muted)}
.t-auth_failure,.t-security_violation{color:var(--high)}.t-auth_success{color:var(--ok)}
meter{width:120px}
input[type=search]{margin:0 0 10px;padding:5px 8px;width:min(360px,100%);border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
button{padding:6px 14px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);cursor:pointer}
.login{max-width:380px;margin:12vh auto;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:24px}
.login h1{font-size:18px;margin:0 0 6px}
.login p{color:var(--muted);margin:0 0 16px}
.login label{display:block;font-weight:600;margin:0 0 6px}
.login input[type=password]{width:100%;padding:8px 10px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);margin:0 0 14px}
.login .error{color:var(--high);font-weight:600}
[hidden]{display:none!important}
`

export const DASHBOARD_JS = `'use strict';
(function () {
  var filter = document.getElementById('event-filter');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#events tbody tr'));
  if (filter) {
    filter.addEventListener('input', function () {
      var q = filter.value.toLowerCase();
      rows.forEach(function (row) {
        row.hidden = q !== '' && row.textContent.toLowerCase().indexOf(q) === -1;
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('time[datetime]'), function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d.getTime())) t.title = d.toLocaleString();
  });
  var auto = document.getElementById('auto-refresh');
  if (auto) {
    var timer;
    try { auto.checked = window.sessionStorage.getItem('gatehouse-dashboard-refresh') === 'on'; } catch (e) {}
    var apply = function () {
      clearInterval(timer);
      try { window.sessionStorage.setItem('gatehouse-dashboard-refresh', auto.checked ? 'on' : 'off'); } catch (e) {}
      if (auto.checked) timer = setInterval(function () { window.location.reload(); }, 30000);
    };
    auto.addEventListener('change', apply);
    apply();
  }
  document.documentElement.setAttribute('data-script', 'ready');
})();
`

/** A small shield, so the browser does not ask the gateway for /favicon.ico. */
export const DASHBOARD_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#175cd3" d="M16 2 4 6v9c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V6z"/><path fill="#fff" d="M11 15h10v8H11zm2-3a3 3 0 0 1 6 0v3h-2v-3a1 1 0 0 0-2 0v3h-2z"/></svg>`
