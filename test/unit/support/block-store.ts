/** A fake of the example's blocklist, shared by the tests that run `block_address`. */
import type { BlockRecord, BlockStore } from '../../../examples/ssh-brute-force/tools';

/** A BlockStore with the semantics of the DynamoDB one: one live block per address. */
export class MemoryBlockStore implements BlockStore {
  readonly items = new Map<string, BlockRecord>();
  async putIfAbsent(record: BlockRecord, nowEpochSeconds: number): Promise<BlockRecord> {
    const live = this.items.get(record.address);
    if (live && live.expiresAtEpoch > nowEpochSeconds) return live;
    this.items.set(record.address, record);
    return record;
  }
}
