/**
 * The librandomx binding (koffi). Pointers travel as plain addresses (uintptr_t numbers) so a
 * cache or dataset allocated on one thread can be handed to the VMs of every worker thread.
 * Nothing here validates: callers check sizes in JS first, because a bad call crashes the
 * whole daemon, not just one task.
 */
import koffi from 'koffi';

export const HASH_SIZE = 32;
export const DATASET_ITEM_SIZE = 64;

export const Flag = {
  LARGE_PAGES: 1,
  HARD_AES: 2,
  FULL_MEM: 4,
  JIT: 8,
  SECURE: 16,
  ARGON2_SSSE3: 32,
  ARGON2_AVX2: 64,
} as const;

/** A native address; 0 is NULL. */
export type Address = number;

export interface RandomXNative {
  getFlags(): number;
  allocCache(flags: number): Address;
  initCache(cache: Address, key: Uint8Array, keySize: number): void;
  releaseCache(cache: Address): void;
  allocDataset(flags: number): Address;
  datasetItemCount(): number;
  initDataset(dataset: Address, cache: Address, startItem: number, itemCount: number): void;
  releaseDataset(dataset: Address): void;
  /** Start of the dataset's items (for advice on its pages, saving and loading it). */
  datasetMemory(dataset: Address): Address;
  createVm(flags: number, cache: Address, dataset: Address): Address;
  destroyVm(vm: Address): void;
  calculateHash(vm: Address, input: Uint8Array, inputSize: number, output: Uint8Array): void;
  calculateHashFirst(vm: Address, input: Uint8Array, inputSize: number): void;
  calculateHashNext(vm: Address, input: Uint8Array, inputSize: number, output: Uint8Array): void;
  calculateHashLast(vm: Address, output: Uint8Array): void;
}

export const LIBRARY = 'librandomx.so.0';

let loaded: RandomXNative | undefined;

/** Load librandomx once per thread (each worker thread has its own koffi instance). */
export function native(): RandomXNative {
  if (loaded) return loaded;
  const lib = koffi.load(LIBRARY);
  const fn = <T>(decl: string): T => lib.func(decl) as unknown as T;
  loaded = {
    getFlags: fn('int randomx_get_flags()'),
    allocCache: fn('uintptr_t randomx_alloc_cache(int flags)'),
    initCache: fn('void randomx_init_cache(uintptr_t cache, const void *key, size_t keySize)'),
    releaseCache: fn('void randomx_release_cache(uintptr_t cache)'),
    allocDataset: fn('uintptr_t randomx_alloc_dataset(int flags)'),
    datasetItemCount: fn('unsigned long randomx_dataset_item_count()'),
    initDataset: fn(
      'void randomx_init_dataset(uintptr_t dataset, uintptr_t cache, unsigned long startItem, unsigned long itemCount)',
    ),
    releaseDataset: fn('void randomx_release_dataset(uintptr_t dataset)'),
    datasetMemory: fn('uintptr_t randomx_get_dataset_memory(uintptr_t dataset)'),
    createVm: fn('uintptr_t randomx_create_vm(int flags, uintptr_t cache, uintptr_t dataset)'),
    destroyVm: fn('void randomx_destroy_vm(uintptr_t vm)'),
    calculateHash: fn(
      'void randomx_calculate_hash(uintptr_t vm, const void *input, size_t inputSize, void *output)',
    ),
    calculateHashFirst: fn(
      'void randomx_calculate_hash_first(uintptr_t vm, const void *input, size_t inputSize)',
    ),
    calculateHashNext: fn(
      'void randomx_calculate_hash_next(uintptr_t vm, const void *input, size_t inputSize, void *output)',
    ),
    calculateHashLast: fn('void randomx_calculate_hash_last(uintptr_t vm, void *output)'),
  };
  return loaded;
}

/** Names of the CPU features in a flag set, as listed by the `Features` property. */
export function featureNames(flags: number): string[] {
  const names: string[] = [];
  if (flags & Flag.JIT) names.push('jit');
  if (flags & Flag.HARD_AES) names.push('hard-aes');
  if (flags & Flag.ARGON2_AVX2) names.push('argon2-avx2');
  if (flags & Flag.ARGON2_SSSE3) names.push('argon2-ssse3');
  if (flags & Flag.SECURE) names.push('secure-jit');
  if (flags & Flag.LARGE_PAGES) names.push('large-pages');
  if (flags & Flag.FULL_MEM) names.push('full-mem');
  return names;
}

/** Size of the cache (256 MiB) and of the dataset (2080 MiB), as librandomx allocates them. */
export const CACHE_BYTES = 256 * 1024 * 1024;
export function datasetBytes(): number {
  return native().datasetItemCount() * DATASET_ITEM_SIZE;
}
