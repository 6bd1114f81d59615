import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import {
  canTransition,
  MACHINE_STATES,
  type Machine,
  type MachineEvent,
  type MachineEventType,
  type MachineState,
  newMachine,
  recordBoot,
  TRANSITIONS,
  transition,
} from '../../firmware/domain/machine.ts';

const T0 = new Date('2026-01-01T00:00:00.000Z');
const T1 = new Date('2026-01-01T00:05:00.000Z');
const MAC = '52:54:00:77:00:11';

function machine(state: MachineState, extra: Partial<Machine> = {}): Machine {
  const m = newMachine({ mac: MAC, arch: 'bios', firmware: 'bios', name: 'HPC-NODE001' }, T0);
  const withState: Machine = { ...m, state, ...extra };
  if (state === 'reimage-requested' && !withState.reimage) {
    withState.reimage = { from: 'deployed', mode: 'next-boot', requestedAt: T0.toISOString() };
  }
  return withState;
}

const EVENTS: Record<MachineEventType, MachineEvent> = {
  seen: { type: 'seen', policy: 'approve' },
  prestage: { type: 'prestage', by: 'admin' },
  approve: { type: 'approve', by: 'admin' },
  reject: { type: 'reject', by: 'admin' },
  'deploy-started': { type: 'deploy-started' },
  deployed: { type: 'deployed' },
  reimage: { type: 'reimage', mode: 'next-boot', by: 'mqtt' },
  'cancel-reimage': { type: 'cancel-reimage' },
  reset: { type: 'reset', by: 'admin' },
};

/**
 * The whole lifecycle as an independent table: for each event, the states it is allowed
 * from and where it leads. Every other (state, event) pair must be refused.
 */
const EXPECTED: Record<MachineEventType, Partial<Record<MachineState, MachineState>>> = {
  seen: { unknown: 'pending' },
  prestage: { unknown: 'approved' },
  approve: { pending: 'approved' },
  reject: { pending: 'rejected' },
  'deploy-started': { approved: 'deploying', 'reimage-requested': 'deploying', deploying: 'deploying' },
  deployed: { deploying: 'deployed' },
  reimage: { approved: 'reimage-requested', deploying: 'reimage-requested', deployed: 'reimage-requested' },
  'cancel-reimage': { 'reimage-requested': 'deployed' },
  reset: {
    pending: 'unknown',
    approved: 'unknown',
    rejected: 'unknown',
    deploying: 'unknown',
    deployed: 'unknown',
    'reimage-requested': 'unknown',
  },
};

for (const type of Object.keys(EVENTS) as MachineEventType[]) {
  for (const state of MACHINE_STATES) {
    const to = EXPECTED[type][state];
    if (to !== undefined) {
      test(`allowed: ${state} --${type}--> ${to}`, (t) => {
        const before = machine(state);
        const snapshot = structuredClone(before);
        const r = transition(before, EVENTS[type], T1);
        if (r instanceof BootboxError) return t.fail(r.message);
        t.is(r.machine.state, to);
        t.is(r.change.from, state);
        t.is(r.change.to, to);
        t.is(r.change.event, type);
        t.is(r.change.at, T1.toISOString());
        t.true(r.change.reason.length > 0, 'every transition carries a reason');
        t.is(r.machine.stateReason, r.change.reason);
        t.is(r.machine.stateSince, T1.toISOString());
        t.deepEqual(before, snapshot, 'the input record is not modified');
        t.true(canTransition(state, type));
      });
    } else {
      test(`refused: ${state} --${type}-->`, (t) => {
        const r = transition(machine(state), EVENTS[type], T1);
        if (!(r instanceof BootboxError)) return t.fail(`moved to ${r.machine.state}`);
        t.is(r.code, 'INVALID_STATE');
        t.is(r.httpStatus, 409);
        t.regex(r.message, new RegExp(`cannot ${type} HPC-NODE001 \\(${MAC}\\): it is ${state}; `));
        t.deepEqual(r.details?.allowedFrom, [...TRANSITIONS[type].from]);
        t.false(canTransition(state, type));
      });
    }
  }
}

test('the rule table and the expected table list the same allowed states', (t) => {
  for (const type of Object.keys(EXPECTED) as MachineEventType[]) {
    t.deepEqual([...TRANSITIONS[type].from].sort(), Object.keys(EXPECTED[type]).sort(), type);
  }
});

test('seen under the auto policy approves at once; under approve it waits', (t) => {
  const auto = transition(machine('unknown'), { type: 'seen', policy: 'auto' }, T1);
  const wait = transition(machine('unknown'), { type: 'seen', policy: 'approve' }, T1);
  if (auto instanceof BootboxError || wait instanceof BootboxError) return t.fail();
  t.is(auto.machine.state, 'approved');
  t.regex(auto.change.reason, /approved automatically/);
  t.is(wait.machine.state, 'pending');
  t.regex(wait.change.reason, /waiting for an administrator/);
});

test('approving a machine that is not pending is a clear INVALID_STATE error', (t) => {
  const r = transition(machine('deployed'), { type: 'approve', by: 'admin' }, T1);
  if (!(r instanceof BootboxError)) return t.fail();
  t.is(r.code, 'INVALID_STATE');
  t.is(
    r.message,
    'cannot approve HPC-NODE001 (52:54:00:77:00:11): it is deployed; only a pending machine can be approved',
  );
});

test('reasons name who acted and why', (t) => {
  const r = transition(machine('pending'), { type: 'reject', by: 'alice', reason: 'not ours' }, T1);
  if (r instanceof BootboxError) return t.fail();
  t.is(r.change.reason, 'rejected by alice: not ours');
  t.is(r.change.by, 'alice');
});

test('reimage keeps the request apart; deploy-started applies its image and clears it', (t) => {
  const deployed = machine('deployed', { image: 'win10' });
  const req = transition(deployed, { type: 'reimage', mode: 'wipe', image: 'win11', by: 'mqtt' }, T1);
  if (req instanceof BootboxError) return t.fail();
  t.is(req.machine.state, 'reimage-requested');
  t.is(req.machine.image, 'win10', 'the machine keeps its image until the deploy starts');
  t.deepEqual(req.machine.reimage, {
    from: 'deployed',
    mode: 'wipe',
    image: 'win11',
    requestedAt: T1.toISOString(),
    by: 'mqtt',
  });
  t.is(req.change.reason, 'reimage (wipe) with image win11 requested by mqtt');

  const started = transition(req.machine, { type: 'deploy-started' }, T1);
  if (started instanceof BootboxError) return t.fail();
  t.is(started.machine.state, 'deploying');
  t.is(started.machine.image, 'win11');
  t.is(started.machine.reimage, undefined);
  t.is(started.change.reason, 'reimage started (image win11)');
});

test('cancel-reimage returns to the state the request came from, with the image unchanged', (t) => {
  for (const from of ['approved', 'deploying', 'deployed'] as const) {
    const req = transition(machine(from, { image: 'win10' }), { type: 'reimage', image: 'win11' }, T1);
    if (req instanceof BootboxError) return t.fail();
    const back = transition(req.machine, { type: 'cancel-reimage', by: 'admin' }, T1);
    if (back instanceof BootboxError) return t.fail();
    t.is(back.machine.state, from);
    t.is(back.machine.image, 'win10');
    t.is(back.machine.reimage, undefined);
    t.is(back.change.reason, 'reimage request cancelled by admin');
  }
});

test('a deploy that starts again while deploying is a restart on the timeline', (t) => {
  const r = transition(machine('deploying', { image: 'win11' }), { type: 'deploy-started' }, T1);
  if (r instanceof BootboxError) return t.fail();
  t.is(r.machine.state, 'deploying');
  t.is(r.change.reason, 'deploy restarted (image win11)');
});

test('reset forgets the approval and any reimage request', (t) => {
  const r = transition(machine('reimage-requested'), { type: 'reset', by: 'admin' }, T1);
  if (r instanceof BootboxError) return t.fail();
  t.is(r.machine.state, 'unknown');
  t.is(r.machine.reimage, undefined);
  t.is(r.machine.name, 'HPC-NODE001', 'the name stays: names are never reused by accident');
  t.regex(r.change.reason, /next netboot counts as a first one/);
});

test('newMachine starts unknown with no boots; recordBoot updates the record but not the state', (t) => {
  const m = newMachine({ mac: MAC, arch: 'uefi-x64', firmware: 'uefi', uuid: 'u-1' }, T0);
  t.like(m, {
    mac: MAC,
    arch: 'uefi-x64',
    state: 'unknown',
    bootCount: 0,
    firstSeen: T0.toISOString(),
    lastSeen: T0.toISOString(),
    uuid: 'u-1',
  });
  t.false('name' in m);
  const b = recordBoot(m, { action: 'first-stage', file: 'ipxe.efi', ip: '10.77.0.50', arch: 'unknown' }, T1);
  t.is(b.state, 'unknown');
  t.is(b.bootCount, 1);
  t.is(b.lastSeen, T1.toISOString());
  t.is(b.firstSeen, T0.toISOString());
  t.is(b.ip, '10.77.0.50');
  t.is(b.arch, 'uefi-x64', "an 'unknown' arch does not overwrite a known one");
  t.deepEqual(b.lastBoot, { at: T1.toISOString(), action: 'first-stage', file: 'ipxe.efi', ip: '10.77.0.50' });
  t.is(m.bootCount, 0, 'the input is not modified');
});
