// k6 twin of barrage's agent flow (worker/src/flow/agent.rs): the same 12 requests with
// the same bodies, for a side-by-side CPU/memory comparison (bench/worker/bench.py).
import http from 'k6/http';
import { sleep } from 'k6';

const BASE = __ENV.RUNTIME_URL;
const THINK = parseFloat(__ENV.THINK || '0');
const VUS = parseInt(__ENV.VUS || '1');
const DURATION = __ENV.DURATION || '10s';
const GRACE = __ENV.GRACEFUL_STOP || '30s';
// RAMP=1: 0 -> VUS over DURATION (as barrage's ramping-vus), else constant VUS
const flow = __ENV.RAMP
  ? { executor: 'ramping-vus', startVUs: 0, stages: [{ duration: DURATION, target: VUS }],
      gracefulStop: GRACE, gracefulRampDown: GRACE }
  : { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: GRACE };
export const options = {
  scenarios: { flow },
  summaryTrendStats: ['avg', 'med', 'p(95)'],
};
const H = { headers: { 'Content-Type': 'application/json' } };
const MSG = 'Hello from barrage';

export default function () {
  const vu = __VU;
  const a = http.post(`${BASE}/assistants`, JSON.stringify({
    graph_id: 'agent', config: { configurable: { model_name: 'openai:mock-gpt-4o' } },
    name: `barrage-vu-${vu}`, metadata: { source: 'barrage' } }), H);
  const aid = a.json('assistant_id');
  const t = http.post(`${BASE}/threads`, JSON.stringify({ metadata: { source: 'barrage' } }), H);
  const tid = t.json('thread_id');
  const run = JSON.stringify({ assistant_id: aid, input: { messages: [{ role: 'user', content: MSG }] } });
  http.post(`${BASE}/threads/${tid}/runs/wait`, run, H);
  http.post(`${BASE}/threads/${tid}/runs/stream`, JSON.stringify({
    assistant_id: aid, input: { messages: [{ role: 'user', content: MSG }] }, stream_mode: ['values'] }), H);
  http.get(`${BASE}/threads/${tid}/state`);
  http.post(`${BASE}/runs/wait`, run, H);
  const ns = ['barrage', `vu-${vu}`];
  http.put(`${BASE}/store/items`, JSON.stringify({ namespace: ns, key: 'item',
    value: { note: 'barrage', vu: vu, iteration: __ITER } }), H);
  http.get(`${BASE}/store/items?namespace=barrage.vu-${vu}&key=item`);
  http.post(`${BASE}/store/items/search`, JSON.stringify({ namespace_prefix: ns, limit: 10, offset: 0 }), H);
  http.del(`${BASE}/store/items`, JSON.stringify({ namespace: ns, key: 'item' }), H);
  http.del(`${BASE}/threads/${tid}`);
  http.del(`${BASE}/assistants/${aid}`);
  if (THINK > 0) sleep(THINK);
}
