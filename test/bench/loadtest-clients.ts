/**
 * Load-test clients (a separate process from the server): N WebSocket clients on loopback, each
 * streaming one run. Prints one JSON line: per run, the receive time of every event.
 */
import WebSocket from 'ws';

const [url, token, clientsArg, tokensArg, model] = process.argv.slice(2) as [string, string, string, string, string];
const clients = Number(clientsArg);
const maxNewTokens = Number(tokensArg);
const now = () => performance.timeOrigin + performance.now();

interface Result {
  runId: string;
  received: number[];
  frames: number;
  gaps: number;
}

function client(i: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
    const result: Result = { runId: '', received: [], frames: 0, gaps: 0 };
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1 })));
    ws.on('message', (data) => {
      const t = now();
      const m = JSON.parse(String(data));
      if (m.type === 'hello') ws.send(JSON.stringify({ type: 'generate', id: 'g', params: { model, promptIds: [5 + i, 6, 7, 8], maxNewTokens, ignoreEos: true, seed: i, sampling: { temperature: 1 } } }));
      else if (m.type === 'accepted') result.runId = m.runId;
      else if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`));
      else if (m.type === 'run_events') {
        result.frames++;
        if (m.from !== result.received.length) result.gaps++;
        for (let k = 0; k < m.events.length; k++) result.received.push(t);
        if (m.events.some((e: { t: string }) => e.t === 'done' || e.t === 'error')) {
          ws.close();
          resolve(result);
        }
      }
    });
    ws.on('error', reject);
  });
}

const deadline = setTimeout(() => {
  process.stderr.write('load test clients timed out\n');
  process.exit(3);
}, 120_000);
const results = await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
clearTimeout(deadline);
process.stdout.write(JSON.stringify(results) + '\n');
