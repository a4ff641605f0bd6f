// A client of an API protected by keyward, in JavaScript with Node's built-in fetch
// (Node 18 or newer): send the key, read the rate-limit headers, and on 429 wait as long as
// Retry-After says before trying once more.
//
//   API_URL   the protected endpoint (default: keyward's own /v1/authorize, which answers
//             exactly what a gateway in front of your API would)
//   API_KEY   the key to send (required)
//
//   API_KEY=sk_live_… node client.mjs

const apiUrl = process.env.API_URL ?? "http://localhost:8080/v1/authorize";
const key = process.env.API_KEY;
if (!key) {
  console.error("set API_KEY to an API key");
  process.exit(2);
}

// The key goes in a header, never in the URL (URLs end up in access logs).
const call = () => fetch(apiUrl, { headers: { Authorization: `Bearer ${key}` } });

let response = await call();
if (response.status === 429) {
  const wait = Number(response.headers.get("retry-after") ?? "1");
  console.error(`rate limited; retrying in ${wait} s`);
  await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  response = await call();
}

console.log(`HTTP ${response.status}`);
for (const name of ["ratelimit-policy", "ratelimit", "x-ratelimit-remaining"]) {
  if (response.headers.has(name)) console.log(`${name}: ${response.headers.get(name)}`);
}
const body = await response.text();
if (response.ok) {
  console.log(body);
} else {
  // Refusals are problem+json with a stable `code`: INVALID, REVOKED, RATE_LIMITED, …
  const problem = JSON.parse(body);
  console.error(`refused: ${problem.code}: ${problem.detail ?? ""}`);
  process.exit(1);
}
