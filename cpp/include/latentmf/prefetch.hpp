// Software prefetch: asks for the cache line of an address ahead of its use (nothing where the
// compiler has no builtin for it).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define LATENTMF_PREFETCH(address) __builtin_prefetch(address)
#define LATENTMF_PREFETCH_WRITE(address) __builtin_prefetch(address, 1)
#else
#define LATENTMF_PREFETCH(address) ((void)(address))
#define LATENTMF_PREFETCH_WRITE(address) ((void)(address))
#endif
