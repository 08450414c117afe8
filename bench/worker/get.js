// k6 twin of barrage's one-request flow (`flow.request = { path = ... }`): one GET per
// iteration, for the like-for-like CPU figure of bench/worker/bench.py (section "get").
import http from 'k6/http';

export const options = {
  scenarios: {
    get: { executor: 'constant-vus', vus: parseInt(__ENV.VUS || '10'), duration: __ENV.DURATION || '10s' },
  },
};

export default function () {
  http.get(__ENV.URL);
}
