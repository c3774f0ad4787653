// Slot names per destination: the first destination keeps the configured
// slot (an existing single-destination deployment keeps its slot and the
// WAL it holds), every other one gets <slot>_<region>, always a valid
// PostgreSQL slot name, or an error naming the destination.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { destinationSlotName, MAX_SLOT_NAME_LENGTH } from '../../src/streams/pg-wal/slot-name.ts';

test('the first destination keeps the slot, others get <slot>_<region> in slot-name characters', () => {
  assert.equal(destinationSlotName('dwcp_pg_main', 'us-east', 0), 'dwcp_pg_main');
  assert.equal(destinationSlotName('dwcp_pg_main', 'ap-south', 1), 'dwcp_pg_main_ap_south');
  assert.equal(destinationSlotName('dwcp_pg_main', 'EU.West-2', 2), 'dwcp_pg_main_eu_west_2');
  assert.match(destinationSlotName('s', 'ap-south', 1), /^[a-z0-9_]+$/);
});

test('a derived name longer than PostgreSQL allows is an error naming the destination', () => {
  const slot = 'x'.repeat(MAX_SLOT_NAME_LENGTH - 3);
  assert.equal(destinationSlotName(slot, 'a-much-longer-region', 0), slot);
  assert.throws(() => destinationSlotName(slot, 'a-much-longer-region', 1), /destination "a-much-longer-region".*longer than 63/);
});
