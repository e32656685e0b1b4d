// Load on the console's push channel: N subscribers of GET /api/stream (customers made through the API, four
// connections each, the per-principal limit) against a running server whose process id is given. The server's CPU
// (utime + stime from /proc/PID/stat) swings with its own work (on the demo world: actors, sites, nodes), so one window
// without subscribers beside one with them cannot resolve a small cost. This measures ROUNDS pairs of windows, each pair
// a window with no subscriber and one with all of them connected (their order alternating, so a drift in the server's
// own load does not favour either side), and gives the mean of the per-pair differences with its 95 % interval
// (Student's t). The subscribers connect anew each round, so every round also pays for connecting them.
// It also counts the events each subscriber received. Last line: one JSON object.
//
//   CG_URL=… CG_OPERATOR_KEY=… CG_PID=… [SUBSCRIBERS=100 SECONDS=20 ROUNDS=6] node e2e/feed-load.mjs
import fs from 'node:fs';

const base = process.env.CG_URL;
const op = process.env.CG_OPERATOR_KEY;
const pid = process.env.CG_PID;
const subscribers = Number(process.env.SUBSCRIBERS ?? 100);
const seconds = Number(process.env.SECONDS ?? 20);
const rounds = Number(process.env.ROUNDS ?? 6);
if (!base || !op || !pid) {
  process.stderr.write('feed-load: set CG_URL, CG_OPERATOR_KEY and CG_PID\n');
  process.exit(2);
}
if (!(subscribers >= 1 && seconds >= 1 && rounds >= 2)) {
  process.stderr.write('feed-load: SUBSCRIBERS ≥ 1, SECONDS ≥ 1 and ROUNDS ≥ 2\n');
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

// CPU seconds of the server over one window of `seconds`.
const window = async () => {
  const c0 = cpu();
  await sleep(seconds * 1000);
  return cpu() - c0;
};

// One window with every subscriber connected; the events each received in it.
const subscribed = async () => {
  const abort = new AbortController();
  const received = new Array(subscribers).fill(0);
  let bytes = 0;
  let connected = 0;
  const streams = received.map(async (_, i) => {
    const r = await fetch(base + '/api/stream', { headers: { Authorization: `Bearer ${keys[Math.floor(i / 4)]}` }, signal: abort.signal });
    if (!r.ok) throw new Error(`stream ${i}: ${r.status}`);
    connected++;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        bytes += value.length;
        received[i] += (decoder.decode(value, { stream: true }).match(/^event: overview$/gm) ?? []).length;
      }
    } catch (e) {
      if (!abort.signal.aborted) throw e;
    }
  });
  const c0 = cpu();
  while (connected < subscribers) await sleep(50);
  const counted0 = [...received];
  await sleep(seconds * 1000);
  const used = cpu() - c0; // includes connecting them
  const counted = received.map((n, i) => n - counted0[i]);
  abort.abort();
  const settled = await Promise.allSettled(streams);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return { used, counted, bytes };
};

const diffs = [];
const idle = [];
const loaded = [];
let least = Infinity;
let events = 0;
let bytes = 0;
for (let r = 0; r < rounds; r++) {
  let a, b;
  if (r % 2 === 0) {
    a = await window();
    b = await subscribed();
  } else {
    b = await subscribed();
    a = await window();
  }
  idle.push(100 * a / seconds);
  loaded.push(100 * b.used / seconds);
  diffs.push(100 * (b.used - a) / seconds);
  least = Math.min(least, ...b.counted);
  events += b.counted.reduce((x, y) => x + y, 0);
  bytes += b.bytes;
  await sleep(1000); // the aborted connections close
}
const mean = (xs) => xs.reduce((x, y) => x + y, 0) / xs.length;
const sd = (xs) => Math.sqrt(xs.reduce((x, y) => x + (y - mean(xs)) ** 2, 0) / (xs.length - 1));
// Two-sided 95 % quantiles of Student's t for 1 … 30 degrees of freedom (beyond: 1.96).
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042];
const half = (T95[rounds - 2] ?? 1.96) * sd(diffs) / Math.sqrt(rounds);
const round2 = (x) => +x.toFixed(2);
console.log(JSON.stringify({
  subscribers,
  seconds,
  rounds,
  server_cpu_idle_percent_of_core: idle.map(round2),
  server_cpu_with_subscribers_percent_of_core: loaded.map(round2),
  feed_cpu_percent_of_core_mean: round2(mean(diffs)),
  feed_cpu_percent_of_core_ci95: [round2(mean(diffs) - half), round2(mean(diffs) + half)],
  events_per_subscriber_per_second: +(events / subscribers / seconds / rounds).toFixed(3),
  least_events_of_a_subscriber_in_a_window: least,
  bytes_per_subscriber_per_second: Math.round(bytes / subscribers / seconds / rounds),
}));
