// Runs a real ASL definition with aws-local-stepfunctions (Node 22), every Lambda Task routed
// to a real Lambda binary behind `cargo lambda watch`, and prints one JSON object on stdout:
//   {status, output, error, cause, durationMs, states: [{name, type, ms, error?}], retries: [...],
//    events: [putEvents entries], executions: [started child executions], mapRuns: [...]}
//
//   node tests/sfn/run.mjs JOB.json
//
// JOB: {"definition": PATH, "substitutions": {NAME: VALUE}, "input": {...},
//       "functions": {"<Resource ARN after substitution>": "<invoke URL>"},
//       "waitOverridesMs": {"GateWait": 0}, "retryOverridesMs": {"Copy": 0},
//       "executionName": NAME,
//       "stateMachines": {"<state machine ARN>": {"definition": PATH, "substitutions": {...}}}}
//
// Only the invocation transport is local: Retry/Catch match on the function's own `errorType`
// (cargo lambda watch answers a failed invocation with HTTP 500 {"errorType","errorMessage"},
// where Lambda would answer 200 + X-Amz-Function-Error; both end up as the Task's Error/Cause).
// `events:putEvents` Tasks are recorded here: moto's EventBridge cannot take a Step Functions
// target, and the tests assert on what the state machine emits.
//
// `states:startExecution.sync:2` Tasks run the named state machine (one of JOB.stateMachines)
// here, with the same function routing, as Step Functions documents the integration: the Task
// waits for the child; it returns {ExecutionArn, Name, StateMachineArn, Status, Output (JSON,
// the `:2` form), Input, StartDate, StopDate}; a failed child fails the Task with
// `States.TaskFailed` and the child's description as Cause; a name already used for this state
// machine is `StepFunctions.ExecutionAlreadyExistsException` (a start retried while the child
// runs would get that execution back on AWS; the tests here never retry a start).
//
// Distributed Map: aws-local-stepfunctions 3.0.0 runs a Map's ItemProcessor with ItemsPath and
// MaxConcurrency(Path) but has no tolerated failure threshold (a failed item fails the Map). So a
// Map whose ProcessorConfig.Mode is DISTRIBUTED is run inline here instead, as the Step
// Functions guide describes it (maprun-fail-threshold.html): each item runs the ItemProcessor as
// its own child workflow, at most MaxConcurrency(Path) at once; the Map fails with
// `States.ExceedToleratedFailureThreshold` when the failed share exceeds
// ToleratedFailurePercentage(Path) (default 0) or the count ToleratedFailureCount(Path); else its
// result is the items' outputs (a failed item's entry is null here: AWS's is not reproduced, and
// the definitions in this repository discard the Map's result). InputPath, ResultPath,
// ResultSelector, OutputPath, Retry and Catch keep the interpreter's semantics (the Map becomes a
// Task with a local handler). Fields not reproduced (ItemReader, ItemBatcher, ResultWriter,
// ItemSelector, Parameters) make this runner refuse the definition rather than run it otherwise.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// aws-local-stepfunctions lives in .work/node (scripts/install-node.sh), not next to this file.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(process.env.LOCAL_NODE_DIR ?? join(root, '.work', 'node'), 'package.json'));
const { StateMachine } = require('aws-local-stepfunctions');

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function load(path, substitutions) {
  let text = readFileSync(path, 'utf8');
  for (const [name, value] of Object.entries(substitutions ?? {})) {
    text = text.split('${' + name + '}').join(value);
  }
  return JSON.parse(text);
}
const definition = load(job.definition, job.substitutions);
const runOverrides = (handlers) => ({
  taskResourceLocalHandlers: handlers,
  waitTimeOverrides: job.waitOverridesMs ?? {},
  retryIntervalOverrides: job.retryOverridesMs ?? {},
});
const ACCOUNT = 'arn:aws:states:us-east-1:123456789012';

const events = [];
const executions = [];
const mapRuns = [];
const started = new Map();

function fail(name, cause) {
  const err = new Error(cause);
  err.name = name;
  err.cause = cause;
  return err;
}

// A `$`, `$.a.b` path against a value (all the definitions here use).
function query(path, value) {
  if (path === '$') return value;
  if (!/^\$(\.[A-Za-z0-9_]+)+$/.test(path)) throw new Error(`path ${path}: not reproduced by run.mjs`);
  return path.slice(2).split('.').reduce((v, k) => (v == null ? undefined : v[k]), value);
}

// Runs `def` on `input` as execution `name`: {status, output, error, cause}.
async function runChild(def, input, name, arn) {
  const machine = new StateMachine(def, { validationOptions: { checkArn: false, noValidate: true } });
  const execution = machine.run(input, {
    overrides: runOverrides(handlersFor(def.States)),
    context: { Execution: { Id: arn, Name: name } },
  });
  // As for the root execution below: a Fail state's ErrorPath/CausePath values are on the
  // ExecutionFailed event; the rejected promise carries a wrapper.
  let failed = null;
  const logs = (async () => {
    for await (const e of execution.eventLogs) if (e.type === 'ExecutionFailed') failed = e;
  })();
  let r;
  try {
    r = { status: 'SUCCEEDED', output: await execution.result };
  } catch (e) {
    const inner = e.cause instanceof Error ? e.cause : e;
    r = { status: 'FAILED', error: inner.name, cause: inner.cause ?? inner.message };
  }
  await logs;
  if (failed) Object.assign(r, { error: failed.Error, cause: failed.Cause });
  return r;
}

function startExecutionSync(input) {
  return (async () => {
    const target = job.stateMachines?.[input.StateMachineArn];
    if (!target) throw fail('StepFunctions.StateMachineDoesNotExistException', `no state machine ${input.StateMachineArn}`);
    const name = input.Name ?? `run-${executions.length}`;
    const key = `${input.StateMachineArn}\n${name}`;
    if (started.has(key)) throw fail('StepFunctions.ExecutionAlreadyExistsException', `execution ${name} already exists`);
    started.set(key, true);
    const smName = input.StateMachineArn.split(':').pop();
    const arn = `${ACCOUNT}:execution:${smName}:${name}`;
    const childInput = typeof input.Input === 'string' ? JSON.parse(input.Input) : input.Input;
    const startDate = Date.now();
    const r = await runChild(load(target.definition, target.substitutions), childInput, name, arn);
    const record = { name, stateMachineArn: input.StateMachineArn, input: childInput, startMs: startDate - t0, stopMs: Date.now() - t0, ...r };
    executions.push(record);
    const description = { ExecutionArn: arn, Name: name, StateMachineArn: input.StateMachineArn, Input: childInput, StartDate: startDate, StopDate: Date.now(), Status: r.status };
    if (r.status !== 'SUCCEEDED') {
      throw fail('States.TaskFailed', JSON.stringify({ ...description, Error: r.error, Cause: r.cause }));
    }
    return { ...description, Output: r.output };
  })();
}

function distributedMap(stateName, definition) {
  // A copy: handlersFor() turns the definition's state into a Task.
  const state = structuredClone(definition);
  for (const field of ['ItemReader', 'ItemBatcher', 'ResultWriter', 'ItemSelector', 'Parameters']) {
    if (state[field] !== undefined) throw new Error(`${stateName}: ${field} is not reproduced by run.mjs`);
  }
  const { ProcessorConfig, ...processor } = state.ItemProcessor;
  return async (input) => {
    const items = query(state.ItemsPath ?? '$', input);
    if (!Array.isArray(items)) throw fail('States.Runtime', `${stateName}: ItemsPath does not name an array`);
    const number = (field) => (state[field + 'Path'] !== undefined ? query(state[field + 'Path'], input) : state[field]);
    const limit = number('MaxConcurrency') || Infinity;
    const percentage = number('ToleratedFailurePercentage') ?? 0;
    const count = number('ToleratedFailureCount');
    const run = { state: stateName, items: items.length, maxConcurrency: limit === Infinity ? 0 : limit, toleratedFailurePercentage: percentage, failed: 0, peakConcurrency: 0 };
    mapRuns.push(run);
    const results = new Array(items.length).fill(null);
    let next = 0, running = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        running++;
        run.peakConcurrency = Math.max(run.peakConcurrency, running);
        const r = await runChild(processor, items[i], `${stateName}-${i}`, `${ACCOUNT}:execution:map-run/${stateName}:${i}`);
        running--;
        if (r.status === 'SUCCEEDED') results[i] = r.output;
        else run.failed++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, Math.max(items.length, 1)) }, worker));
    const over = (items.length > 0 && (run.failed * 100) / items.length > percentage) || (count !== undefined && run.failed > count);
    if (over) {
      throw fail('States.ExceedToleratedFailureThreshold', `${run.failed} of ${items.length} items failed (tolerated: ${percentage}%${count !== undefined ? `, ${count}` : ''})`);
    }
    return results;
  };
}

// Local handlers for the Tasks of `states` (and of inline Maps' and Parallels' inner states);
// DISTRIBUTED Maps become Tasks run by distributedMap().
function handlersFor(states) {
  const handlers = {};
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Map' && state.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED') {
      const handler = distributedMap(name, state);
      for (const field of ['ItemsPath', 'ItemProcessor', 'MaxConcurrency', 'MaxConcurrencyPath', 'ToleratedFailurePercentage', 'ToleratedFailurePercentagePath', 'ToleratedFailureCount', 'ToleratedFailureCountPath', 'Label']) delete state[field];
      state.Type = 'Task';
      state.Resource = `arn:aws:states:::local:distributed-map:${name}`;
      handlers[name] = handler;
      continue;
    }
    if (state.Type === 'Map') Object.assign(handlers, handlersFor((state.ItemProcessor ?? state.Iterator).States));
    if (state.Type === 'Parallel') for (const b of state.Branches) Object.assign(handlers, handlersFor(b.States));
    if (state.Type !== 'Task') continue;
    if (state.Resource === 'arn:aws:states:::events:putEvents') {
      handlers[name] = async (input) => {
        for (const e of input.Entries ?? []) events.push({ state: name, ...e });
        return { Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `local-${events.length}-${i}` })), FailedEntryCount: 0 };
      };
      continue;
    }
    if (state.Resource === 'arn:aws:states:::states:startExecution.sync:2') {
      handlers[name] = startExecutionSync;
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
  return handlers;
}

const t0 = Date.now();
const handlers = handlersFor(definition.States);
const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
const executionName = job.executionName ?? 'local';
const execution = machine.run(job.input, {
  overrides: runOverrides(handlers),
  context: { Execution: { Id: `${ACCOUNT}:execution:root:${executionName}`, Name: executionName } },
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
process.stdout.write(JSON.stringify({ status, output, error, cause, durationMs: Date.now() - t0, states, retries, events, executions, mapRuns }) + '\n');
