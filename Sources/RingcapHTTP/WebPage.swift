/// The pages the HTTP server serves, from the binary: plain HTML, CSS and JavaScript, nothing
/// loaded from the internet, no build step, no framework.
enum WebPage {
    private static let style = #"""
        :root { color-scheme: dark; --bg: #121417; --card: #1c1f24; --line: #2c3037; --text: #e6e8eb; --dim: #8b929c;
                --ok: #3fb950; --warn: #d29922; --off: #6e7681; --accent: #58a6ff; }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text); font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
        header h1 { font-size: 1.1rem; margin: 0; letter-spacing: .08em; }
        header .count { color: var(--dim); font-variant: small-caps; flex: 1; }
        button { background: var(--card); color: var(--text); border: 1px solid var(--line); border-radius: 6px; padding: .35rem .8rem; font: inherit; cursor: pointer; }
        button:hover { border-color: var(--accent); }
        main { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: .8rem; padding: .8rem; }
        figure.cam { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
        figure.cam img { display: block; width: 100%; aspect-ratio: 16 / 10; object-fit: contain; background: #000; cursor: zoom-in; }
        figcaption { padding: .45rem .6rem; display: grid; gap: .2rem; }
        .row { display: flex; align-items: center; gap: .5rem; }
        .name { font-weight: 600; flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .state { font-variant: small-caps; font-size: .85rem; }
        .state.streaming { color: var(--ok); } .state.backoff, .state.connecting { color: var(--warn); } .state.stopped, .state.finished { color: var(--off); }
        .stats { color: var(--dim); font-size: .82rem; font-variant-numeric: tabular-nums; }
        .err { color: var(--warn); font-size: .8rem; }
        label.switch { display: inline-flex; align-items: center; gap: .35rem; font-variant: small-caps; font-size: .85rem; color: var(--dim); cursor: pointer; }
        label.switch input { appearance: none; width: 2.2rem; height: 1.2rem; border-radius: 1rem; background: var(--off); position: relative; margin: 0; cursor: pointer; }
        label.switch input::after { content: ""; position: absolute; top: .15rem; left: .15rem; width: .9rem; height: .9rem; border-radius: 50%; background: var(--text); transition: left .15s; }
        label.switch input:checked { background: #b62324; }
        label.switch input:checked::after { left: 1.15rem; }
        #overlay { position: fixed; inset: 0; background: rgba(0, 0, 0, .92); display: none; flex-direction: column; align-items: center; justify-content: center; gap: .5rem; padding: 1rem; z-index: 10; }
        #overlay.open { display: flex; }
        #overlay img { max-width: 100%; max-height: calc(100vh - 5rem); object-fit: contain; }
        #overlay .title { font-size: 1.1rem; } #overlay .stats { font-size: .9rem; }
        footer { color: var(--dim); font-size: .8rem; padding: .4rem 1rem 1rem; }
        .card { max-width: 22rem; margin: 12vh auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1.5rem; }
        .card h1 { margin: 0 0 1rem; font-size: 1.3rem; letter-spacing: .08em; }
        .card label { display: block; font-variant: small-caps; color: var(--dim); margin: .6rem 0 .2rem; }
        .card input { width: 100%; padding: .5rem; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--text); font: inherit; }
        .card button { width: 100%; margin-top: 1rem; padding: .55rem; }
        #message { color: var(--warn); margin: .8rem 0 0; } #message:empty { display: none; }
        """#

    /// GET /: the live grid.
    static let index: String = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ringcap — live</title>
        <style>
        """# + style + #"""
        </style>
        </head>
        <body data-frames-total="0" data-cameras="0">
        <header><h1>ringcap</h1><span class="count" id="count"></span><button id="logout" type="button">log out</button></header>
        <main id="grid"></main>
        <div id="overlay"><div class="title" id="big-name"></div><img id="big" alt=""><div class="stats" id="big-stats"></div></div>
        <footer id="status">connecting…</footer>
        <script>
        'use strict';
        const tiles = new Map();
        const grid = document.getElementById('grid');
        const statusLine = document.getElementById('status');
        let bigName = null;
        let cameras = [];

        function api(path, options = {}) {
          options.headers = Object.assign({ 'X-Ringcap': 'page' }, options.headers || {});
          return fetch(path, options).then(r => {
            if (r.status === 401) { location.href = '/login'; throw new Error('login needed'); }
            return r;
          });
        }
        function statsText(c) {
          return `${c.fps.toFixed(1)} fps · written ${c.written} · dropped ${c.dropped} · paused ${c.paused}` +
            (c.width ? ` · ${c.width}×${c.height}` : '');
        }
        function el(tag, cls, text) {
          const e = document.createElement(tag);
          if (cls) e.className = cls;
          if (text !== undefined) e.textContent = text;
          return e;
        }
        function addTile(c) {
          const fig = el('figure', 'cam');
          fig.dataset.camera = c.name;
          fig.dataset.frames = '0';
          const img = el('img');
          img.alt = c.name;
          img.addEventListener('click', () => openBig(c.name));
          const cap = el('figcaption');
          const row = el('div', 'row');
          const name = el('span', 'name', c.name);
          const state = el('span', 'state');
          const label = el('label', 'switch');
          const rec = el('input', 'rec');
          rec.type = 'checkbox';
          rec.title = 'store this camera\'s frames';
          label.append(rec, document.createTextNode('rec'));
          row.append(name, state, label);
          const stats = el('div', 'stats');
          const err = el('div', 'err');
          cap.append(row, stats, err);
          fig.append(img, cap);
          grid.append(fig);
          rec.addEventListener('change', () => {
            const wanted = rec.checked;
            api(`/api/cameras/${encodeURIComponent(c.name)}/recording`, {
              method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ recording: wanted })
            }).then(r => {
              if (!r.ok) throw new Error(`HTTP ${r.status}`);
              err.textContent = '';
              return r.json().then(update);
            }).catch(e => { rec.checked = !wanted; err.textContent = `could not switch: ${e.message}`; });
          });
          const tile = { fig, img, state, rec, stats, url: null };
          tiles.set(c.name, tile);
          document.body.dataset.cameras = String(tiles.size);
          return tile;
        }
        function update(c) {
          const t = tiles.get(c.name) || addTile(c);
          t.state.textContent = c.state;
          t.state.className = `state ${c.state}`;
          if (document.activeElement !== t.rec) t.rec.checked = c.recording;
          t.stats.textContent = statsText(c);
          if (bigName === c.name) document.getElementById('big-stats').textContent = `${c.state} · ${statsText(c)}`;
        }
        function refresh() {
          api('/api/cameras').then(r => {
            if (r.headers.get('X-Ringcap-Auth') === 'none') document.getElementById('logout').hidden = true;
            return r.json();
          }).then(list => {
            cameras = list;
            list.forEach(update);
            document.getElementById('count').textContent = `${list.length} camera${list.length === 1 ? '' : 's'}`;
          }).catch(() => {});
        }
        function show(name, jpeg) {
          const t = tiles.get(name);
          if (!t) return;
          const url = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
          const old = t.url;
          t.url = url;
          t.img.onload = () => { if (old) URL.revokeObjectURL(old); };
          t.img.src = url;
          t.fig.dataset.frames = String(Number(t.fig.dataset.frames) + 1);
          document.body.dataset.framesTotal = String(Number(document.body.dataset.framesTotal) + 1);
        }
        function connect() {
          const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/live');
          ws.binaryType = 'arraybuffer';
          ws.onopen = () => { statusLine.textContent = 'connected'; };
          ws.onmessage = m => {
            if (!(m.data instanceof ArrayBuffer) || m.data.byteLength < 2) return;
            const view = new DataView(m.data);
            const n = view.getUint16(0);
            const name = new TextDecoder().decode(new Uint8Array(m.data, 2, n));
            show(name, new Uint8Array(m.data, 2 + n));
          };
          ws.onclose = e => {
            statusLine.textContent = 'reconnecting…';
            if (e.code === 1008) { location.href = '/login'; return; }
            setTimeout(() => { refresh(); connect(); }, 1000);
          };
        }
        function openBig(name) {
          bigName = name;
          document.getElementById('big-name').textContent = name;
          document.getElementById('big').src = `/api/cameras/${encodeURIComponent(name)}/stream.mjpg`;
          document.getElementById('overlay').classList.add('open');
          const c = cameras.find(x => x.name === name);
          if (c) update(c);
        }
        function closeBig() {
          const big = document.getElementById('big');
          big.src = '';
          big.removeAttribute('src');
          bigName = null;
          document.getElementById('overlay').classList.remove('open');
        }
        document.getElementById('overlay').addEventListener('click', closeBig);
        document.addEventListener('keydown', e => { if (e.key === 'Escape') closeBig(); });
        document.getElementById('logout').addEventListener('click', () => {
          fetch('/logout', { method: 'POST' }).finally(() => { location.href = '/login'; });
        });
        refresh();
        setInterval(refresh, 1000);
        connect();
        </script>
        </body>
        </html>
        """#

    /// GET /login: the login form; the server replaces `{{message}}` with an escaped message (or "").
    static let login: String = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ringcap — log in</title>
        <style>
        """# + style + #"""
        </style>
        </head>
        <body>
        <form class="card" id="login" method="post" action="/login">
        <h1>ringcap</h1>
        <label for="user">user</label>
        <input id="user" name="user" autocomplete="username" required autofocus>
        <label for="password">password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
        <button id="submit" type="submit">log in</button>
        <p id="message" role="alert">{{message}}</p>
        </form>
        </body>
        </html>
        """#
}
