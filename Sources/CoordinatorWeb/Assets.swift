/// The console's script and style sheet, served from the binary (nothing is fetched from
/// elsewhere, nothing is built with Node). The Content-Security-Policy allows no inline script
/// or style, so these are the only ones a page runs. The script is a module: each page's part
/// of it is a function, run when its element is on the page.
enum Assets {
    static let script = #"""
        // A module (`<script type="module">`): strict, and its names are its own.
        const $ = (selector) => document.querySelector(selector);
        const meta = (name) => { const m = document.querySelector('meta[name="' + name + '"]'); return m ? m.content : ''; };
        const csrf = meta('csrf-token');
        const mode = meta('decision-mode');
        const utf8 = (text) => new TextEncoder().encode(text);
        const b64url = (bytes) => { let s = ''; for (const b of bytes) s += String.fromCharCode(b); return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''); };

        async function post(url, body) {
          const response = await fetch(url, { method: 'POST', credentials: 'same-origin',
            headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify(body) });
          const text = await response.text();
          try { return JSON.parse(text); } catch (e) { return { ok: false, error: response.status + ' ' + text.trim() }; }
        }

        // Countdowns to a time (approval expiry), every second.
        function span(seconds) {
          const s = Math.floor(seconds);
          if (s < 60) return s + ' s';
          if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
          if (s < 172800) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
          return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
        }
        function tick() {
          for (const el of document.querySelectorAll('.countdown[data-until]')) {
            const left = (Number(el.dataset.until) - Date.now()) / 1000;
            el.textContent = left <= 0 ? 'expired' : 'in ' + span(left);
            el.classList.toggle('bad', left > 0 && left < 600);
          }
        }

        // Parts of a page that refresh themselves: the server renders them (escaped) again.
        function refreshing(live) {
          let last = null;
          let busy = false;
          setInterval(async () => {
            if (document.hidden || busy) return;
            busy = true;
            try {
              const response = await fetch(live.dataset.live, { credentials: 'same-origin' });
              const html = await response.text();
              if (response.ok && html !== last) {
                // Keyboard users keep their place: the link that had focus gets it back.
                const active = document.activeElement;
                const href = active && live.contains(active) ? active.getAttribute('href') : null;
                last = html;
                live.innerHTML = html;
                tick();
                if (href) { const again = live.querySelector('a[href="' + CSS.escape(href) + '"]'); if (again) again.focus(); }
              }
            } catch (e) { /* the next refresh tries again */ } finally { busy = false; }
          }, 1000);
        }

        function eventDetails(ev) {
          const parts = [];
          if (ev.recommendation_id) parts.push('rec=' + ev.recommendation_id);
          if (ev.approval_id) parts.push('approval=' + String(ev.approval_id).slice(0, 8));
          if (ev.plan_id) parts.push('plan=' + String(ev.plan_id).slice(0, 8));
          if (ev.step_index !== undefined && ev.step_index !== null) parts.push('step=' + ev.step_index);
          const data = ev.data || {};
          for (const key of ['reason', 'error', 'user_id', 'approved_by', 'policy', 'principal']) {
            if (typeof data[key] === 'string' && data[key] !== '') parts.push(key + '=' + data[key]);
          }
          if (data.verified === true) parts.push('verified');
          return parts.join(' ');
        }
        function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
        function tone(type) { return /failed|rolled_back|rejected|expired|cancelled/.test(type) ? 'bad' : /completed|approved/.test(type) ? 'good' : ''; }

        // Events: the live tail (Server-Sent Events; the browser reconnects by itself with Last-Event-ID).
        function liveTail(table) {
          const body = table.tBodies[0];
          const status = $('#stream-status');
          const source = new EventSource(table.dataset.stream);
          source.onopen = () => { status.textContent = 'live'; status.className = 'note good'; };
          source.onerror = () => { status.textContent = 'reconnecting…'; status.className = 'note bad'; };
          source.addEventListener('gap', (e) => { status.textContent = JSON.parse(e.data).message; });
          source.onmessage = (e) => {
            const ev = JSON.parse(e.data);
            const row = body.insertRow(0);
            row.dataset.type = ev.type || '';
            row.dataset.id = ev.stream_id || '';
            cell(row, (ev.stream_id || '') + (ev.partition === undefined ? '' : ' p' + ev.partition), 'dim');
            cell(row, String(ev.at || '').slice(11, 19));
            cell(row, ev.type || '?', tone(ev.type || ''));
            cell(row, ev.customer_id || '');
            cell(row, eventDetails(ev));
            while (body.rows.length > 500) body.deleteRow(-1);
            table.dataset.last = ev.stream_id || '';
          };
        }

        // Browsers give WebCrypto only to a secure context: https://, or http:// on loopback.
        const insecure = 'This page is not a secure context (it is neither https:// nor http:// on 127.0.0.1 or localhost), so this browser cannot sign here: serve the console with --tls-cert and --tls-key.';

        // The signing key, kept in IndexedDB as a non-extractable WebCrypto key.
        function database() {
          return new Promise((resolve, reject) => {
            const request = indexedDB.open('coordinatord-console', 1);
            request.onupgradeneeded = () => request.result.createObjectStore('keys');
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
        }
        async function keyStore(verb, value) {
          const db = await database();
          return new Promise((resolve, reject) => {
            const store = db.transaction('keys', verb === 'get' ? 'readonly' : 'readwrite').objectStore('keys');
            const request = verb === 'get' ? store.get('signing') : verb === 'put' ? store.put(value, 'signing') : store.delete('signing');
            request.onsuccess = () => resolve(request.result || null);
            request.onerror = () => reject(request.error);
          });
        }
        const loadKey = () => keyStore('get').catch(() => null);

        // The key page: import a key file, or forget the key.
        function keyPage(keyForm) {
          const status = $('#key-status');
          const show = (k) => {
            if (!window.isSecureContext) {
              status.textContent = insecure;
              status.className = 'bad';
              return;
            }
            status.textContent = k ? 'Signing as ' + k.principal + ' (key imported ' + k.imported + ').' : 'No key imported.';
          };
          loadKey().then(show);
          keyForm.addEventListener('submit', async (e) => {
            e.preventDefault();
            try {
              if (!window.isSecureContext || !window.crypto || !crypto.subtle) throw new Error(insecure);
              const principal = $('#principal').value.trim();
              const file = $('#key-file').files[0];
              if (!principal || !file) throw new Error('give your principal id and your key file');
              const text = (await file.text()).trim();
              const seed = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
              if (seed.length !== 32) throw new Error('not a key file: expected base64 of a 32-byte Ed25519 seed');
              // PKCS #8 for an Ed25519 private key (RFC 8410) around the seed.
              const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, ...seed]);
              const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
              seed.fill(0);
              await keyStore('put', { principal, key, imported: new Date().toISOString().slice(0, 16).replace('T', ' ') });
              $('#key-file').value = '';
              show(await loadKey());
              status.className = 'good';
            } catch (err) {
              status.textContent = 'Not imported: ' + (err && err.message ? err.message : err);
              status.className = 'bad';
            }
          });
          $('#forget-key').addEventListener('click', async () => { await keyStore('delete'); show(null); });
        }

        // An approval: decide, then follow the reply and the events it causes.
        function approvalPage(article, panel) {
          const page = {
            id: article.dataset.approval, planID: null, seen: [], decided: panel.dataset.done === '1',
            approve: $('#approve'), reject: $('#reject'), why: $('#why-disabled'), result: $('#result'), list: $('#decision-events'),
          };
          page.enable = (on) => { page.approve.disabled = page.reject.disabled = !on || page.decided; };
          const source = new EventSource('/events/stream?customer=' + encodeURIComponent(article.dataset.customer));
          source.onmessage = (e) => {
            const ev = JSON.parse(e.data);
            if (ev.type === 'plan.created' && ev.approval_id === page.id && ev.plan_id) page.planID = ev.plan_id;
            if (ev.approval_id === page.id || (ev.plan_id && (ev.plan_id === page.planID || !page.planID))) { page.seen.push(ev); renderDecisionEvents(page); }
          };
          if (page.decided || !page.approve) return;
          if (mode === 'unsigned') { page.enable(true); page.why.textContent = ''; }
          if (mode === 'signed' && !window.isSecureContext) {
            page.why.textContent = insecure;
          } else if (mode === 'signed') {
            loadKey().then((k) => {
              if (k) { page.enable(true); page.why.textContent = 'Signing as ' + k.principal + '.'; }
              panel.dataset.ready = '1';
            });
          }
          // data-ready: the buttons' state is final (signed, once the key store was read).
          if (mode !== 'signed' || !window.isSecureContext) panel.dataset.ready = '1';
          page.approve.addEventListener('click', () => decide(page, 'approve'));
          page.reject.addEventListener('click', () => decide(page, 'reject'));
        }

        // The events of this approval and of the plan it made, as they came.
        function renderDecisionEvents(page) {
          page.list.textContent = '';
          for (const ev of page.seen) {
            if (ev.approval_id !== page.id && !(page.planID && ev.plan_id === page.planID)) continue;
            const li = document.createElement('li');
            li.dataset.type = ev.type || '';
            const type = document.createElement('strong');
            type.textContent = ev.type || '?';
            type.className = tone(ev.type || '');
            li.append(type, ' ' + String(ev.at || '').slice(11, 19) + ' ' + eventDetails(ev));
            page.list.append(li);
          }
        }

        async function decide(page, verb) {
          const reason = $('#reason').value;
          const result = page.result;
          result.className = '';
          if (verb === 'reject' && reason.trim() === '') {
            result.textContent = 'A rejection needs a reason.';
            result.className = 'error';
            $('#reason').focus();
            return;
          }
          page.enable(false);
          result.textContent = 'Sending…';
          let answer;
          try {
            answer = await sendDecision(page.id, verb, reason);
          } catch (err) {
            answer = { ok: false, error: err && err.message ? err.message : String(err) };
          }
          showAnswer(page, answer);
        }

        // Signed: the server prepares the payload, this browser signs it with its key (JWS, EdDSA).
        async function sendDecision(id, verb, reason) {
          const path = '/approvals/' + encodeURIComponent(id);
          if (mode !== 'signed') return post(path + '/decide', { decision: verb, reason });
          const k = await loadKey();
          if (!k) throw new Error('no signing key in this browser');
          const prepared = await post(path + '/prepare', { decision: verb, reason, principal: k.principal });
          if (!prepared.ok) throw new Error(prepared.error);
          const header = b64url(utf8(JSON.stringify({ alg: 'EdDSA', kid: k.principal, iat: Math.floor(Date.now() / 1000) })));
          const input = header + '.' + prepared.payload;
          const signature = await crypto.subtle.sign({ name: 'Ed25519' }, k.key, utf8(input));
          return post(path + '/decide', { jws: input + '.' + b64url(new Uint8Array(signature)) });
        }

        function showAnswer(page, answer) {
          const result = page.result;
          if (!answer.ok) {
            result.className = 'error';
            result.textContent = 'Refused: ' + answer.error;
            page.enable(true);
            return;
          }
          page.decided = answer.status !== 'pending';
          const badge = document.querySelector('#approval-status .badge');
          if (badge) { badge.textContent = answer.status; badge.className = 'badge ' + (answer.status === 'approved' ? 'good' : answer.status === 'rejected' ? 'bad' : 'warn'); }
          result.className = 'ok';
          result.textContent = answer.text;
          if (answer.plan_id) {
            page.planID = answer.plan_id;
            const link = document.createElement('a');
            link.href = '/plans/' + encodeURIComponent(page.planID);
            link.id = 'plan-link';
            link.textContent = 'Open the plan';
            result.append(' ', link);
            renderDecisionEvents(page);
          }
          page.enable(!page.decided);
        }

        tick();
        setInterval(tick, 1000);
        const live = document.getElementById('live');
        if (live && live.dataset.live) refreshing(live);
        const table = document.getElementById('events');
        if (table && table.dataset.stream) liveTail(table);
        const keyForm = document.getElementById('key-form');
        if (keyForm) keyPage(keyForm);
        const article = document.getElementById('approval');
        const panel = document.getElementById('decision');
        if (article && panel) approvalPage(article, panel);
        """#

    static let style = #"""
        :root { --bg: #fafafa; --fg: #1d1d1f; --muted: #5f6368; --line: #d9d9de; --card: #fff; --good: #137333; --bad: #b3261e; --warn: #8a5a00; --link: #0b57d0; font-family: system-ui, sans-serif; color-scheme: light dark; }
        @media (prefers-color-scheme: dark) { :root { --bg: #16171a; --fg: #e8e8ea; --muted: #a0a4ab; --line: #33363c; --card: #1f2125; --good: #6dd58c; --bad: #ff8a80; --warn: #f2c14e; --link: #8ab4f8; } }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.45; }
        a { color: var(--link); }
        a:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }
        .skip { position: absolute; left: -9999px; } .skip:focus { left: 8px; top: 8px; background: var(--card); padding: 4px 8px; }
        header { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 8px 16px; border-bottom: 1px solid var(--line); background: var(--card); }
        .brand { font-weight: 700; }
        nav { display: flex; flex-wrap: wrap; gap: 4px 12px; }
        nav a { text-decoration: none; padding: 4px 2px; } nav a[aria-current="page"] { font-weight: 700; border-bottom: 2px solid var(--link); }
        .mode { margin-left: auto; font-size: 0.85em; padding: 2px 8px; border: 1px solid var(--line); border-radius: 10px; color: var(--muted); }
        main { padding: 12px 16px 48px; max-width: 1200px; margin: 0 auto; }
        h1 { font-size: 1.4em; margin: 8px 0 12px; } h2 { font-size: 1.15em; } small, .dim, .note { color: var(--muted); }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; background: var(--card); }
        th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: break-word; }
        th { white-space: nowrap; } td .title { overflow-wrap: anywhere; }
        th { font-size: 0.85em; color: var(--muted); font-weight: 600; } .num { text-align: right; }
        .badge { white-space: nowrap; display: inline-block; padding: 0 6px; border-radius: 8px; border: 1px solid currentColor; font-size: 0.85em; }
        .good { color: var(--good); } .bad { color: var(--bad); } .warn { color: var(--warn); }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; margin-top: 16px; }
        .card { display: flex; flex-direction: column; gap: 4px; padding: 12px; background: var(--card); border: 1px solid var(--line); border-radius: 8px; text-decoration: none; color: var(--fg); }
        .card strong { font-size: 2em; } .label { color: var(--muted); }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; } dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        pre { background: var(--card); border: 1px solid var(--line); padding: 8px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
        button, .button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
        button.good { border-color: var(--good); } button.danger, .button.danger { border-color: var(--bad); color: var(--bad); }
        button:disabled { opacity: 0.5; cursor: not-allowed; }
        textarea, input { font: inherit; width: 100%; max-width: 40em; padding: 6px; background: var(--card); color: var(--fg); border: 1px solid var(--line); border-radius: 6px; display: block; margin: 4px 0 8px; }
        form.filter { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: end; } form.filter label { flex: 1 1 200px; }
        .error { color: var(--bad); } .ok { color: var(--good); }
        ol.events { padding-left: 20px; } ol.events li { margin: 2px 0; overflow-wrap: anywhere; }
        .clip { max-width: 40em; }
        @media (max-width: 600px) { main { padding: 8px; } th, td { padding: 4px; } .mode { margin-left: 0; } dl.facts { grid-template-columns: 1fr; } }
        """#
}
