// Runs the real ASL definition with aws-local-stepfunctions (Node 22), every Lambda Task routed
// to a real Lambda binary behind `cargo lambda watch`, and prints one JSON object on stdout:
//   {status, output, error, cause, durationMs, states: [{name, type, ms, error?}], retries: [...],
//    events: [putEvents entries]}
//
//   node tests/sfn/run.mjs JOB.json
//
// JOB: {"definition": PATH, "substitutions": {NAME: VALUE}, "input": {...},
//       "functions": {"<Resource ARN after substitution>": "<invoke URL>"},
//       "waitOverridesMs": {"GateWait": 0}, "retryOverridesMs": {"Copy": 0}}
//
// Only the invocation transport is local: Retry/Catch match on the function's own `errorType`
// (cargo lambda watch answers a failed invocation with HTTP 500 {"errorType","errorMessage"},
// where Lambda would answer 200 + X-Amz-Function-Error; both end up as the Task's Error/Cause).
// `events:putEvents` Tasks are recorded here: moto's EventBridge cannot take a Step Functions
// target, and the tests assert on what the state machine emits.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// aws-local-stepfunctions lives in .work/node (scripts/install-node.sh), not next to this file.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(process.env.LOCAL_NODE_DIR ?? join(root, '.work', 'node'), 'package.json'));
const { StateMachine } = require('aws-local-stepfunctions');

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let text = readFileSync(job.definition, 'utf8');
for (const [name, value] of Object.entries(job.substitutions ?? {})) {
  text = text.split('${' + name + '}').join(value);
}
const definition = JSON.parse(text);

const events = [];
const handlers = {};
for (const [name, state] of Object.entries(definition.States)) {
  if (state.Type !== 'Task') continue;
  if (state.Resource === 'arn:aws:states:::events:putEvents') {
    handlers[name] = async (input) => {
      for (const e of input.Entries ?? []) events.push({ state: name, ...e });
      return { Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `local-${events.length}-${i}` })), FailedEntryCount: 0 };
    };
    continue;
  }
  const url = job.functions[state.Resource];
  if (!url) throw new Error(`no function for Task ${name} (${state.Resource})`);
  handlers[name] = async (input) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
    const body = await res.text();
    let parsed;
    try { parsed = JSON.parse(body); } catch { parsed = undefined; }
    const failed = !res.ok || res.headers.get('x-amz-function-error');
    if (failed) {
      const err = new Error(parsed?.errorMessage ?? body);
      err.name = parsed?.errorType ?? 'Lambda.Unknown';
      err.cause = parsed?.errorMessage ?? body;
      throw err;
    }
    return parsed;
  };
}

const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
const started = Date.now();
const execution = machine.run(job.input, {
  overrides: {
    taskResourceLocalHandlers: handlers,
    waitTimeOverrides: job.waitOverridesMs ?? {},
    retryIntervalOverrides: job.retryOverridesMs ?? {},
  },
});

const states = [];
const retries = [];
let status = 'RUNNING', error = null, cause = null, output = null;
const open = new Map();
const logs = (async () => {
  for await (const e of execution.eventLogs) {
    if (e.type === 'StateEntered') open.set(e.state.name, e.timestamp);
    else if (e.type === 'StateExited' || e.type === 'StateFailed') {
      const t0 = open.get(e.state.name) ?? e.timestamp;
      const entry = { name: e.state.name, type: e.state.type, ms: e.timestamp - t0 };
      if (e.type === 'StateFailed') { entry.error = e.Error; entry.cause = e.Cause; }
      else if (e.state.output && typeof e.state.output === 'object') entry.output = e.state.output;
      states.push(entry);
    } else if (e.type === 'StateRetried') {
      retries.push({ name: e.state.name, attempt: e.retry.attempt });
    } else if (e.type === 'ExecutionFailed') {
      error = e.Error; cause = e.Cause;
    }
  }
})();
try {
  output = await execution.result;
  status = 'SUCCEEDED';
} catch (e) {
  status = 'FAILED';
  // ExecutionFailed (logged above) carries the Fail state's ErrorPath/CausePath values.
  error ??= e.name; cause ??= e.cause ?? e.message;
}
await logs;
process.stdout.write(JSON.stringify({ status, output, error, cause, durationMs: Date.now() - started, states, retries, events }) + '\n');
