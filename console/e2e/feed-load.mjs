// Load on the console's push channel: N subscribers of GET /api/stream (customers made through the API, four
// connections each, the per-principal limit), for a few seconds, against a running server whose process id is given.
// Measures the server's CPU (utime + stime from /proc/PID/stat) over the same span with no subscriber and with them,
// and the events each subscriber received. Last line: one JSON object.
//
//   CG_URL=… CG_OPERATOR_KEY=… CG_PID=… [SUBSCRIBERS=100 SECONDS=30] node e2e/feed-load.mjs
import fs from 'node:fs';

const base = process.env.CG_URL;
const op = process.env.CG_OPERATOR_KEY;
const pid = process.env.CG_PID;
const subscribers = Number(process.env.SUBSCRIBERS ?? 100);
const seconds = Number(process.env.SECONDS ?? 30);
if (!base || !op || !pid) {
  process.stderr.write('feed-load: set CG_URL, CG_OPERATOR_KEY and CG_PID\n');
  process.exit(2);
}
const ticks = 100; // USER_HZ on Linux
const cpu = () => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks; // utime, stime (fields 14, 15)
};
const post = async (p, key, body) => {
  const r = await fetch(base + p, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const keys = [];
const tag = Date.now().toString(36);
for (let i = 0; i < Math.ceil(subscribers / 4); i++) keys.push((await post('/api/customers', op, { name: `load-${tag}-${i}`, region: 'frankfurt' })).api_key);

const idle0 = cpu();
await sleep(seconds * 1000);
const idleCpu = cpu() - idle0;

const abort = new AbortController();
const received = new Array(subscribers).fill(0);
const bytes = new Array(subscribers).fill(0);
const streams = received.map(async (_, i) => {
  const r = await fetch(base + '/api/stream', { headers: { Authorization: `Bearer ${keys[Math.floor(i / 4)]}` }, signal: abort.signal });
  if (!r.ok) throw new Error(`stream ${i}: ${r.status}`);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      bytes[i] += value.length;
      received[i] += (decoder.decode(value, { stream: true }).match(/^event: overview$/gm) ?? []).length;
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  }
});
await sleep(2000); // all connected
const loaded0 = cpu();
const counted0 = received.reduce((a, b) => a + b, 0);
await sleep(seconds * 1000);
const loadedCpu = cpu() - loaded0;
const counted = received.reduce((a, b) => a + b, 0) - counted0;
abort.abort();
await Promise.allSettled(streams);
const result = {
  subscribers,
  seconds,
  server_cpu_idle_percent_of_core: +(100 * idleCpu / seconds).toFixed(2),
  server_cpu_with_subscribers_percent_of_core: +(100 * loadedCpu / seconds).toFixed(2),
  feed_cpu_percent_of_core: +(100 * (loadedCpu - idleCpu) / seconds).toFixed(2),
  events_per_subscriber_per_second: +(counted / subscribers / seconds).toFixed(3),
  least_events_of_a_subscriber: Math.min(...received),
  bytes_per_subscriber: Math.round(bytes.reduce((a, b) => a + b, 0) / subscribers),
};
console.log(JSON.stringify(result));
