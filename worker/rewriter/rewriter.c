/*
 * The yield hook's rewrite (docs/scheduling.md, section 1), compiled to WebAssembly: a pass in
 * JavaScript over a 27 MB code section took as long as the engine's own compile of it (about 20 ns
 * an instruction); this one reads each byte once at a few nanoseconds. Built by build.sh with
 * Debian's clang (--target=wasm32, no libc); worker/instrument.ts drives it.
 *
 * What it writes into a verified module (version 6):
 *  - a loop probe at every loop header: `c += 1; if (c == LOOP_BATCH) c = $flush()`, c a local of
 *    the function; $flush takes LOOP_BATCH from the budget (a global) and calls dewgrid.yield when
 *    it is spent. Each loop is wrapped in three blocks so that the call is outside it (a call
 *    inside a loop keeps the loop's values out of registers); a loop with parameters, or in a
 *    function that uses exception handling, keeps the call inside;
 *  - in a loop nest that makes no call of its own and uses float or vector locals, the wrapped
 *    loops do $flush's work inline, and save those locals to globals around the host call and
 *    read them back after it (version 5): SpiderMonkey's optimizing tier otherwise keeps every
 *    value live across that call in memory, in the inner loops too (the fractal ran 2.2-2.9x
 *    slower in Firefox 153 than without the hook; docs/benchmarks.md (l)); in a nest without
 *    calls or floats, the same for the integer locals it reads before writing, up to
 *    MAX_INT_SAVED of them (version 6: yosys's hook in Firefox about 1.23x -> 1.14x);
 *  - c is added to the budget before every way out of a function that has passed a loop (return,
 *    a branch to its label, its end, a tail call) and before each import's call: the count is
 *    exact whatever the allowances;
 *  - an entry probe (`budget -= 1`, the host called when spent) only in functions that can recurse
 *    (in a cycle of the call graph, where an indirect call reaches every function of its type that
 *    a table or ref.func can hold) or that can make more than MAX_UNPROBED activations of
 *    functions without one: every cycle of calls passes a probe, and the work between two probes
 *    is bounded. Version 3 probed every function that calls; in C++ that is malloc, free and
 *    operator new on every call.
 *
 * Interface: rw_input(n) gives the address for the module's n bytes; rw_instrument(n, allowance)
 * answers the rewritten module's length (at rw_output()) or -1, with a message at rw_error().
 * Malformed input gives an error or, for what this pass does not check, a module the engine's
 * validator refuses: the rewrite runs only on modules whose hash matched their signed manifest.
 */

typedef unsigned char u8;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;

#define LOOP_BATCH 64
/* Activations of functions without an entry probe that one activation may make, at most. */
#define MAX_UNPROBED 256
#define PAGE 65536u

#ifdef __wasm__
extern u8 __heap_base;
#define HEAP_BASE (&__heap_base)
#define HEAP_ROOM() ((u64)__builtin_wasm_memory_size(0) * PAGE - (u64)(u32)HEAP_BASE)
#define GROW(pages) (__builtin_wasm_memory_grow(0, (pages)) != (u32)-1)
#else /* a native build, to profile the pass (see build.sh) */
#define HEAP_BASE native_heap
static u8 native_heap[1u << 30];
#define HEAP_ROOM() ((u64)sizeof native_heap)
#define GROW(pages) 0
#endif
static u8 *heap_top;

static char error_text[256];
static u8 *output;
static u32 stats[8];

/* ---- Memory: a bump allocator that grows the memory, and an error exit ---------------------- */

static int failed;

static void fail(const char *message) {
  if (failed) return;
  failed = 1;
  u32 i = 0;
  for (; message[i] && i < sizeof error_text - 1; i++) error_text[i] = message[i];
  error_text[i] = 0;
}

static void *alloc(u32 n) {
  u64 at = ((u64)(heap_top - HEAP_BASE) + 15u) & ~(u64)15u;
  u64 end = at + n;
  u64 have = HEAP_ROOM();
  if (end > have) {
    u64 pages = (end - have + PAGE - 1) / PAGE;
    if (end > 0xffff0000ull || !GROW((u32)pages)) {
      fail("out of memory");
      return 0;
    }
  }
  heap_top = HEAP_BASE + end;
  return HEAP_BASE + at;
}

/*
 * Grows the memory once, at the start, to about what a rewrite of `length` bytes takes (yosys: 3.1x
 * its length; small modules: 0.2-0.9 MiB more). Grown step by step, as alloc does, yosys's memory
 * grew 52 times, and V8 counted each growth as a new buffer of the whole memory: a full GC every
 * other growth (yosys's rewrite in Node 20 about 200 ms, grown once 140 ms). Pages not touched
 * cost nothing; when the guess is short, alloc grows the rest; when the memory cannot grow, alloc
 * fails as before.
 */
static void reserve(u64 n) {
  u64 have = HEAP_ROOM();
  if (n > have && n <= 0xffff0000ull) (void)GROW((u32)((n - have + PAGE - 1) / PAGE));
}

/* A growable byte buffer. */
typedef struct {
  u8 *data;
  u32 length;
  u32 capacity;
} Buf;

static void buf_init(Buf *b, u32 capacity) {
  b->data = alloc(capacity);
  b->length = 0;
  b->capacity = b->data ? capacity : 0;
}

static int room(Buf *b, u32 n) {
  if (b->length + n <= b->capacity) return 1;
  u32 capacity = b->capacity * 2 > b->length + n ? b->capacity * 2 : b->length + n + 1024;
  u8 *bigger = alloc(capacity);
  if (!bigger) return 0;
  __builtin_memcpy(bigger, b->data, b->length);
  b->data = bigger;
  b->capacity = capacity;
  return 1;
}

static void put_byte(Buf *b, u8 v) {
  if (room(b, 1)) b->data[b->length++] = v;
}

static void put_bytes(Buf *b, const u8 *from, u32 n) {
  if (n && room(b, n)) {
    __builtin_memcpy(b->data + b->length, from, n);
    b->length += n;
  }
}

/* put_bytes for a source that the destination may overlap (the body arena, see rw_instrument). */
static void put_moved(Buf *b, const u8 *from, u32 n) {
  if (n && room(b, n)) {
    __builtin_memmove(b->data + b->length, from, n);
    b->length += n;
  }
}

static void put_u32(Buf *b, u32 v) {
  if (!room(b, 5)) return;
  do {
    u8 byte = v & 0x7f;
    v >>= 7;
    if (v) byte |= 0x80;
    b->data[b->length++] = byte;
  } while (v);
}

/* A u32 in exactly five bytes (a padded LEB128, which the format allows): sizes written before what they measure. */
static void put_u32_padded_at(u8 *at, u32 v) {
  for (int i = 0; i < 4; i++) {
    at[i] = (v & 0x7f) | 0x80;
    v >>= 7;
  }
  at[4] = v & 0x7f;
}

static void put_s32(Buf *b, i32 v) {
  for (;;) {
    u8 byte = v & 0x7f;
    v >>= 7;
    if ((v == 0 && !(byte & 0x40)) || (v == -1 && (byte & 0x40))) {
      put_byte(b, byte);
      return;
    }
    put_byte(b, byte | 0x80);
  }
}

static int bytes_differ(const u8 *a, const u8 *b, u32 n) {
  for (u32 i = 0; i < n; i++)
    if (a[i] != b[i]) return 1;
  return 0;
}

/* ---- Reading ------------------------------------------------------------------------------- */

/* The input ends with PADDING zero bytes, so a read past a truncated end stops on a zero. */
#define PADDING 64

static const u8 *in_end; /* the end of the current section's content */

static u32 leb(const u8 **pp) {
  const u8 *p = *pp;
  u32 v = 0;
  for (u32 shift = 0; shift < 35; shift += 7) {
    u8 byte = *p++;
    v |= (u32)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *pp = p;
      return v;
    }
  }
  fail("a malformed LEB128 number");
  *pp = p;
  return 0;
}

/* An unsigned LEB128 read from `p` into `v`, `p` kept in a register (a function taking &p kept it in memory). */
#define LEB(p, v) do { u32 v_ = 0, s_ = 0; u8 b_; do { b_ = *(p)++; v_ |= (u32)(b_ & 0x7f) << s_; s_ += 7; } while ((b_ & 0x80) && s_ < 35); (v) = v_; } while (0)

static inline const u8 *skip_leb(const u8 *p) {
  for (int i = 0; i < 10; i++)
    if (!(*p++ & 0x80)) return p;
  fail("a malformed LEB128 number");
  return p;
}

static const u8 *skip_heap_type(const u8 *p) {
  if (*p >= 0x40 && *p < 0x80) return p + 1; /* an abstract heap type */
  return skip_leb(p);
}

static const u8 *skip_valtype(const u8 *p) {
  u8 t = *p++;
  if (t == 0x63 || t == 0x64) return skip_heap_type(p);
  return p;
}

static const u8 *skip_block_type(const u8 *p) {
  u8 t = *p;
  if (t == 0x40 || (t >= 0x6a && t <= 0x7f)) return p + 1;
  if (t == 0x63 || t == 0x64) return skip_heap_type(p + 1);
  return skip_leb(p); /* a type index, s33 */
}

static const u8 *skip_memarg(const u8 *p) {
  u32 align;
  LEB(p, align);
  if (align & 0x40) p = skip_leb(p); /* multi-memory: a memory index */
  return skip_leb(p);
}

static const u8 *skip_limits(const u8 *p) {
  u8 flags = *p++;
  p = skip_leb(p);
  if (flags & 1) p = skip_leb(p);
  return p;
}

/* ---- The module ---------------------------------------------------------------------------- */

typedef struct {
  u8 id;
  const u8 *content;
  u32 size;
} Section;

#define MAX_SECTIONS 256
static Section sections[MAX_SECTIONS];
static u32 section_count;

static Section *find(u8 id) {
  for (u32 i = 0; i < section_count; i++)
    if (sections[i].id == id) return &sections[i];
  return 0;
}

static u32 type_count;
static u32 *type_params;  /* each type's parameter count */
static const u8 **type_param_at; /* where each type's parameter types start */
static u32 *type_class;   /* each type's first index with the same signature */
static u32 imported_funcs, imported_globals, defined_funcs, defined_globals;
static u32 *func_type;    /* each defined function's type index */
static u8 *referenced;    /* defined functions a table or ref.func can hold */
static u32 yield_fn, flush_fn, budget_global;

static inline u32 remap(u32 f) { return f >= yield_fn ? f + 1 : f; }

static void mark_referenced(u32 f) {
  if (f >= imported_funcs && f - imported_funcs < defined_funcs) referenced[f - imported_funcs] = 1;
}

static void read_types(const Section *s) {
  const u8 *p = s->content;
  type_count = leb(&p);
  if (type_count > s->size) { fail("the type section ends early"); return; }
  type_params = alloc(4 * (type_count + 1));
  type_param_at = alloc(sizeof(u8 *) * (type_count + 1));
  type_class = alloc(4 * (type_count + 1));
  const u8 **starts = alloc(sizeof(u8 *) * (type_count + 1));
  u32 *lengths = alloc(4 * (type_count + 1));
  if (failed) return;
  for (u32 i = 0; i < type_count && !failed; i++) {
    if (*p != 0x60) { fail("the module uses GC type definitions, which the yield hook does not rewrite"); return; }
    starts[i] = p;
    p++;
    u32 n = leb(&p);
    type_params[i] = n;
    type_param_at[i] = p;
    for (u32 j = 0; j < n && !failed; j++) p = skip_valtype(p);
    u32 results = leb(&p);
    for (u32 j = 0; j < results && !failed; j++) p = skip_valtype(p);
    if (p > s->content + s->size) { fail("the type section ends early"); return; }
    lengths[i] = (u32)(p - starts[i]);
    /* Structural equivalence: call_indirect accepts any function whose signature matches. */
    type_class[i] = i;
    for (u32 j = 0; j < i; j++) {
      if (type_class[j] == j && lengths[j] == lengths[i] && !bytes_differ(starts[j], starts[i], lengths[i])) {
        type_class[i] = j;
        break;
      }
    }
  }
}

static void read_imports(const Section *s) {
  const u8 *p = s->content;
  u32 count = leb(&p);
  for (u32 i = 0; i < count && !failed; i++) {
    u32 n = leb(&p);
    p += n;
    n = leb(&p);
    p += n;
    if (p > s->content + s->size) { fail("the import section ends early"); return; }
    u8 kind = *p++;
    switch (kind) {
      case 0: leb(&p); imported_funcs++; break;
      case 1: p = skip_valtype(p); p = skip_limits(p); break;
      case 2: p = skip_limits(p); break;
      case 3: p = skip_valtype(p); p++; imported_globals++; break;
      case 4: p++; leb(&p); break;
      default: fail("an unknown import kind"); return;
    }
  }
}

/* ---- Constant expressions, globals, exports, elements ------------------------------------- */

/* Copies a constant expression up to its end, function indices remapped (and marked referenced). */
static const u8 *rewrite_expr(const u8 *p, Buf *out) {
  for (;;) {
    if (failed || p >= in_end) { fail("a constant expression ends early"); return p; }
    const u8 *at = p;
    u8 op = *p++;
    switch (op) {
      case 0x0b: put_byte(out, op); return p;
      case 0xd2: {
        u32 f = leb(&p);
        mark_referenced(f);
        put_byte(out, op);
        put_u32(out, remap(f));
        continue;
      }
      case 0x23: p = skip_leb(p); break;
      case 0x41: case 0x42: p = skip_leb(p); break;
      case 0x43: p += 4; break;
      case 0x44: p += 8; break;
      case 0xd0: p = skip_heap_type(p); break;
      case 0xfd: p = skip_leb(p); p += 16; break;
      default:
        if (!(op >= 0x6a && op <= 0x7e)) { fail("an opcode in a constant expression that the yield hook does not know"); return p; }
    }
    put_bytes(out, at, (u32)(p - at));
  }
}

static void budget_global_code(Buf *out, u32 allowance) {
  put_byte(out, 0x7f); /* i32 */
  put_byte(out, 0x01); /* mutable */
  put_byte(out, 0x41);
  put_s32(out, (i32)allowance);
  put_byte(out, 0x0b);
}

/*
 * The types of local a yield site saves, in the order of their globals: in a nest with float or
 * vector locals, those (whose registers a call takes all of); in a nest without, the integers that
 * it reads before it writes them, which it carries from one iteration to the next (version 6), if
 * there are at most MAX_INT_SAVED. Version 5 saved no integers (saving them beside the floats gave
 * the fractal no more speed in Firefox and yosys 3% more code); saving them in integer-only nests
 * takes yosys's hook in Firefox 153 from about 1.24x to 1.15x (docs/benchmarks.md (k)).
 */
#define SAVED_KINDS 5
#define FIRST_INT_KIND 3
static const u8 saved_kind_type[SAVED_KINDS] = {0x7d, 0x7c, 0x7b, 0x7f, 0x7e}; /* f32 f64 v128 i32 i64 */
/* Integer locals an integer-only nest saves at most; past that its sites call $flush (size: with no
   limit yosys grew to 1.108x, with 4 1.093x, against 1.077x). */
#define MAX_INT_SAVED 4
static u32 save_slots[SAVED_KINDS]; /* globals of each kind: the most one yield site saves */

static u32 saved_kind(u8 type) {
  for (u32 k = 0; k < SAVED_KINDS; k++)
    if (saved_kind_type[k] == type) return k;
  return SAVED_KINDS;
}

static u32 save_globals_total(void) {
  u32 n = 0;
  for (u32 k = 0; k < SAVED_KINDS; k++) n += save_slots[k];
  return n;
}

/* The save globals: mutable, zero. */
static void save_globals_code(Buf *out) {
  for (u32 k = 0; k < SAVED_KINDS; k++) {
    for (u32 i = 0; i < save_slots[k]; i++) {
      put_byte(out, saved_kind_type[k]);
      put_byte(out, 0x01);
      switch (k) {
        case 0: put_byte(out, 0x43); for (int z = 0; z < 4; z++) put_byte(out, 0); break;
        case 1: put_byte(out, 0x44); for (int z = 0; z < 8; z++) put_byte(out, 0); break;
        case 2: put_byte(out, 0xfd); put_byte(out, 0x0c); for (int z = 0; z < 16; z++) put_byte(out, 0); break;
        case 3: put_byte(out, 0x41); put_byte(out, 0); break;
        default: put_byte(out, 0x42); put_byte(out, 0); break;
      }
      put_byte(out, 0x0b);
    }
  }
}

static void rewrite_globals(const Section *s, Buf *out, u32 allowance) {
  if (!s) {
    put_u32(out, 1 + save_globals_total());
    budget_global_code(out, allowance);
    save_globals_code(out);
    return;
  }
  const u8 *p = s->content;
  in_end = s->content + s->size;
  u32 count = leb(&p);
  put_u32(out, count + 1 + save_globals_total());
  for (u32 i = 0; i < count && !failed; i++) {
    const u8 *at = p;
    p = skip_valtype(p);
    p++; /* mutability */
    put_bytes(out, at, (u32)(p - at));
    p = rewrite_expr(p, out);
  }
  budget_global_code(out, allowance);
  save_globals_code(out);
}

static const char BUDGET_EXPORT[] = "__dewgrid_budget";

static void rewrite_exports(const Section *s, Buf *out) {
  u32 count = 0;
  const u8 *p = 0;
  if (s) {
    p = s->content;
    count = leb(&p);
  }
  put_u32(out, count + 1);
  for (u32 i = 0; i < count && !failed; i++) {
    u32 n = leb(&p);
    const u8 *name = p;
    p += n;
    if (p > s->content + s->size) { fail("the export section ends early"); return; }
    if (n == sizeof BUDGET_EXPORT - 1 && !bytes_differ(name, (const u8 *)BUDGET_EXPORT, n)) { fail("the module already exports __dewgrid_budget"); return; }
    u8 kind = *p++;
    u32 index = leb(&p);
    put_u32(out, n);
    put_bytes(out, name, n);
    put_byte(out, kind);
    if (kind == 0) mark_referenced(index); /* the host holds it: it may put it in a table */
    put_u32(out, kind == 0 ? remap(index) : index);
  }
  put_u32(out, sizeof BUDGET_EXPORT - 1);
  put_bytes(out, (const u8 *)BUDGET_EXPORT, sizeof BUDGET_EXPORT - 1);
  put_byte(out, 0x03);
  put_u32(out, budget_global);
}

static void rewrite_elements(const Section *s, Buf *out) {
  const u8 *p = s->content;
  in_end = s->content + s->size;
  u32 count = leb(&p);
  put_u32(out, count);
  for (u32 i = 0; i < count && !failed; i++) {
    u32 flags = leb(&p);
    put_u32(out, flags);
    if (flags == 2 || flags == 6) {
      const u8 *at = p;
      p = skip_leb(p); /* table index */
      put_bytes(out, at, (u32)(p - at));
    }
    if (!(flags & 1)) p = rewrite_expr(p, out); /* active: the offset */
    const u8 *at = p;
    if (flags & 4) {
      if (flags & 3) p = skip_valtype(p);
      put_bytes(out, at, (u32)(p - at));
      u32 n = leb(&p);
      put_u32(out, n);
      for (u32 j = 0; j < n && !failed; j++) p = rewrite_expr(p, out);
    } else {
      if (flags & 3) p++; /* elemkind */
      put_bytes(out, at, (u32)(p - at));
      u32 n = leb(&p);
      if (n > s->size) { fail("the element section ends early"); return; }
      put_u32(out, n);
      for (u32 j = 0; j < n && !failed; j++) {
        u32 f = leb(&p);
        mark_referenced(f);
        put_u32(out, remap(f));
      }
    }
    if (p > in_end) { fail("the element section ends early"); return; }
  }
}

/* ---- The probes ---------------------------------------------------------------------------- */

/* `if (budget < 1) budget = dewgrid.yield(budget)` */
static void spent_code(Buf *b) {
  put_byte(b, 0x23); put_u32(b, budget_global);
  put_byte(b, 0x41); put_byte(b, 0x01); put_byte(b, 0x48); put_byte(b, 0x04); put_byte(b, 0x40);
  put_byte(b, 0x23); put_u32(b, budget_global);
  put_byte(b, 0x10); put_u32(b, yield_fn);
  put_byte(b, 0x24); put_u32(b, budget_global);
  put_byte(b, 0x0b);
}

/* `budget -= 1; if (budget < 1) budget = dewgrid.yield(budget)` */
static void entry_probe_code(Buf *b) {
  put_byte(b, 0x23); put_u32(b, budget_global);
  put_byte(b, 0x41); put_byte(b, 0x01); put_byte(b, 0x6b);
  put_byte(b, 0x24); put_u32(b, budget_global);
  spent_code(b);
}

/* $flush, () -> i32: `budget -= LOOP_BATCH`, the host called when spent; answers 0. */
static void flush_code(Buf *b) {
  put_byte(b, 0x00); /* no locals */
  put_byte(b, 0x23); put_u32(b, budget_global);
  put_byte(b, 0x41); put_s32(b, LOOP_BATCH); put_byte(b, 0x6b);
  put_byte(b, 0x24); put_u32(b, budget_global);
  spent_code(b);
  put_byte(b, 0x41); put_byte(b, 0x00); put_byte(b, 0x0b);
}

/* Small byte strings made once per function (they name its counter local). */
typedef struct {
  u8 bytes[64];
  u32 length;
} Code;

static void code_put(Code *c, u8 v) { c->bytes[c->length++] = v; }
static void code_u32(Code *c, u32 v) {
  do {
    u8 byte = v & 0x7f;
    v >>= 7;
    if (v) byte |= 0x80;
    c->bytes[c->length++] = byte;
  } while (v);
}

/* ---- The code section ---------------------------------------------------------------------- */

typedef struct {
  u32 out_start;   /* where its rewritten instructions start in the body arena */
  u32 out_length;
  u32 locals_from; /* its locals' groups in the input, after their count */
  u32 locals_to;
  u32 groups;
  u32 edges_from;  /* its call sites in `edges` */
  u32 edges_to;
  u32 sites_from;  /* its wrapped loops' yield sites in `site_at` */
  u32 sites_to;
  u8 loops;
  u8 probed;
} Func;

static Func *funcs;
/* The rewritten instructions of every body, one after another. */
static Buf bodies;
/* Call sites: a defined function's index (below defined_funcs) or defined_funcs + a type class (an indirect call). */
static u32 *edges;
/* For an indirect call: where it starts in the body arena (a probe may go there). */
static u32 *edge_at;
static u32 edge_count, edge_capacity;

static void add_edge(u32 to, u32 at) {
  if (edge_count == edge_capacity) {
    u32 capacity = edge_capacity ? edge_capacity * 2 : 65536;
    u32 *bigger = alloc(4 * capacity), *bigger_at = alloc(4 * capacity);
    if (failed) return;
    if (edge_count) {
      __builtin_memcpy(bigger, edges, 4 * edge_count);
      __builtin_memcpy(bigger_at, edge_at, 4 * edge_count);
    }
    edges = bigger;
    edge_at = bigger_at;
    edge_capacity = capacity;
  }
  edge_at[edge_count] = at;
  edges[edge_count++] = to;
}

/*
 * Yield sites and loop nests. A yield site is the host call in a wrapped loop's tail; a nest is an
 * outermost wrapped loop with the loops inside it. In a nest that makes no call of its own, around
 * each site the float and vector locals the nest reads or writes, and the integer ones it reads
 * before writing, are saved to globals and read back after the call, so that none of their values
 * is live across it: SpiderMonkey's optimizing tier kept such values in memory, inner loops
 * included (docs/benchmarks.md (k), (l)). Other nests'
 * sites call $flush as version 4 did. A nest's list is made when it ends, from the local accesses
 * logged since it began; the sites are written in when the bodies are put together (put_body),
 * once the globals they need are counted.
 */
#define MAX_SAVED 64     /* locals a nest saves at most: past that, the first ones only */
static u32 *site_at;      /* where in the body arena the site goes */
static u32 *site_nest;    /* its nest */
static u32 site_count, site_capacity;
static u32 *nest_fn;      /* each nest's function */
static u8 *nest_flushes;  /* each nest: whether its sites call $flush (it makes calls of its own, or has no local to save) */
static u32 *nest_from;    /* each nest's first local in nest_locals; the next nest's is its end */
static u32 nest_count, nest_capacity;
static u32 *nest_locals;
static u32 nest_local_count, nest_local_capacity;
static u32 *access_log;   /* the current nest's local accesses, in order; the top bit set for a write */
static u32 access_count, access_capacity;
static u32 *local_mark;   /* per local of the current function: the last nest that listed it */
static u32 local_mark_capacity, nest_serial;
static u32 current_fn;

static u32 *grow_u32(u32 *old, u32 count, u32 *capacity) {
  u32 bigger = *capacity ? *capacity * 2 : 4096;
  u32 *fresh = alloc(4 * bigger);
  if (!fresh) return old;
  if (count) __builtin_memcpy(fresh, old, 4 * count);
  *capacity = bigger;
  return fresh;
}

static void log_access(u32 local) {
  if (access_count == access_capacity) {
    access_log = grow_u32(access_log, access_count, &access_capacity);
    if (failed) return;
  }
  access_log[access_count++] = local;
}

static void add_site(u32 at) {
  if (site_count == site_capacity) {
    u32 capacity = site_capacity;
    site_at = grow_u32(site_at, site_count, &capacity);
    site_nest = grow_u32(site_nest, site_count, &site_capacity);
    if (failed) return;
  }
  site_at[site_count] = at;
  site_nest[site_count++] = nest_count - 1;
}

static void open_nest(void) {
  if (nest_count == nest_capacity) {
    u32 capacity = nest_capacity;
    nest_fn = grow_u32(nest_fn, nest_count, &capacity);
    u8 *calls = alloc(2 * (nest_capacity ? nest_capacity : 2048));
    if (calls && nest_count) __builtin_memcpy(calls, nest_flushes, nest_count);
    nest_flushes = calls;
    nest_from = grow_u32(nest_from, nest_count, &nest_capacity);
    if (failed) return;
  }
  nest_fn[nest_count] = current_fn;
  nest_flushes[nest_count] = 0;
  nest_from[nest_count++] = nest_local_count;
  access_count = 0;
}

static u8 local_type(u32 f, u32 local);

/* The nest ends: the locals it saves listed, in the order first seen. */
static void close_nest(void) {
  nest_serial++;
  u32 listed = 0;
  if (nest_flushes[nest_count - 1]) access_count = 0;
  for (u32 i = 0; i < access_count && listed < MAX_SAVED; i++) {
    u32 local = access_log[i] & 0x7fffffffu;
    if (local_mark[local] == nest_serial) continue;
    local_mark[local] = nest_serial;
    u32 kind = saved_kind(local_type(current_fn, local));
    if (kind == SAVED_KINDS) continue;
    if (kind >= FIRST_INT_KIND && access_log[i] >> 31) continue; /* written first: no value carried to the loop's top */
    if (nest_local_count == nest_local_capacity) {
      nest_locals = grow_u32(nest_locals, nest_local_count, &nest_local_capacity);
      if (failed) return;
    }
    nest_locals[nest_local_count++] = local;
    listed++;
  }
  access_count = 0;
}

/* Per type class: whether its indirect calls get a probe (their class is in a cycle of calls). */
static u8 *class_probed;

/* Per open block: wrapped loops open up to and including it, and whether it is one. */
static u32 *wrapped_up_to;
static u8 *is_wrapped;

static u32 block_capacity;

#define USES_EXCEPTIONS 2

static inline void copy_run(Buf *out, const u8 *from, const u8 *to) {
  u32 n = (u32)(to - from);
  if (!n || !room(out, n)) return;
  u8 *d = out->data + out->length;
  if (n <= 16) {
    for (u32 i = 0; i < n; i++) d[i] = from[i];
  } else {
    __builtin_memcpy(d, from, n);
  }
  out->length += n;
}

/*
 * One body's instructions (from `p` to `end`, its final end included) into `out`, the probes in.
 * Answers 1, 0 on an error, or USES_EXCEPTIONS when `wrap` is set and the body uses exception
 * handling (whose labels this does not shift): the caller rewrites it again without wrapping.
 */
__attribute__((noinline)) static int rewrite_body(const u8 *p, const u8 *end, Buf *out, Func *fn, u32 counter, int wrap) {
  const u8 *copy_from = p;
  u32 depth = 0;
  int loops = 0;
  int logging = 0; /* in a nest that has made no call so far */
  Code settle = {{0}, 0}, loop_probe = {{0}, 0}, wrapped_probe = {{0}, 0}, tail_head = {{0}, 0}, tail_end = {{0}, 0};
  u32 need = (u32)(end - p) + 1;
  if (need > block_capacity) {
    block_capacity = need * 2;
    wrapped_up_to = alloc(4 * block_capacity);
    is_wrapped = alloc(block_capacity);

    if (failed) return 0;
  }
  if (counter > local_mark_capacity) {
    local_mark_capacity = counter * 2;
    local_mark = alloc(4 * local_mark_capacity);
    if (failed) return 0;
    __builtin_memset(local_mark, 0, 4 * local_mark_capacity);
  }
#define BELOW (depth == 0 ? 0 : wrapped_up_to[depth - 1])
#define OPEN(w) do { wrapped_up_to[depth] = BELOW + (w); is_wrapped[depth++] = (w); } while (0)
#define FLUSH_TO(q) do { copy_run(out, copy_from, (q)); } while (0)
  while (p < end) {
    const u8 *at = p;
    u8 op = *p++;
    if (op >= 0x45 && op <= 0xc4) continue; /* numeric, no immediates */
    if (op >= 0x20 && op <= 0x24) { /* locals and globals */
      if (logging && op <= 0x22) { /* a local in a nest without calls (yet): logged for its yield sites */
        u32 local; LEB(p, local);
        if (local < counter) log_access(local | (op == 0x20 ? 0 : 0x80000000u));
        continue;
      }
      while (*p++ & 0x80);
      continue;
    }
    if (op >= 0x28 && op <= 0x3e) { /* loads and stores */
      u8 align = *p++;
      if (align & 0x80) while (*p++ & 0x80);
      if (align & 0x40) while (*p++ & 0x80);
      while (*p++ & 0x80);
      continue;
    }
    switch (op) {
      case 0x41: case 0x42:
        while (*p++ & 0x80);
        break;
      case 0x02: case 0x04: case 0x06: /* block, if, try */
        if (op == 0x06 && wrap) return USES_EXCEPTIONS;
        p = skip_block_type(p);
        OPEN(0);
        break;
      case 0x03: { /* loop */
        const u8 *type_at = p;
        p = skip_block_type(p);
        u8 t = *type_at;
        u32 params = 0;
        if (!(t == 0x40 || (t >= 0x63 && t <= 0x7f))) {
          const u8 *q = type_at;
          u32 index; LEB(q, index);
          params = index < type_count ? type_params[index] : 0;
        }
        if (!loops) {
          loops = 1;
          /* budget -= c; c = 0 */
          code_put(&settle, 0x23); code_u32(&settle, budget_global);
          code_put(&settle, 0x20); code_u32(&settle, counter);
          code_put(&settle, 0x6b);
          code_put(&settle, 0x24); code_u32(&settle, budget_global);
          code_put(&settle, 0x41); code_put(&settle, 0x00);
          code_put(&settle, 0x21); code_u32(&settle, counter);
        }
        int wrapped = wrap && params == 0;
        if (wrapped) {
          if (!wrapped_probe.length) {
            /* c += 1; br_if 1 (c == LOOP_BATCH): out of the loop, to the yield block */
            code_put(&wrapped_probe, 0x20); code_u32(&wrapped_probe, counter);
            code_put(&wrapped_probe, 0x41); code_put(&wrapped_probe, 0x01); code_put(&wrapped_probe, 0x6a);
            code_put(&wrapped_probe, 0x22); code_u32(&wrapped_probe, counter);
            code_put(&wrapped_probe, 0x41); code_put(&wrapped_probe, 0xc0); code_put(&wrapped_probe, 0x00); /* LOOP_BATCH, 64 as an s32 */
            code_put(&wrapped_probe, 0x46); code_put(&wrapped_probe, 0x0d); code_put(&wrapped_probe, 0x01);
          }
          /* block bt (done); loop (retry); block (yield); loop bt (the original); the probe */
          if (!BELOW) {
            open_nest();
            logging = 1;
          }
          FLUSH_TO(at);
          put_byte(out, 0x02);
          copy_run(out, type_at, p);
          put_byte(out, 0x03); put_byte(out, 0x40); put_byte(out, 0x02); put_byte(out, 0x40);
          copy_run(out, at, p);
          put_bytes(out, wrapped_probe.bytes, wrapped_probe.length);
          stats[3]++;
        } else {
          if (!loop_probe.length) {
            /* c += 1; if (c == LOOP_BATCH) c = $flush() */
            code_put(&loop_probe, 0x20); code_u32(&loop_probe, counter);
            code_put(&loop_probe, 0x41); code_put(&loop_probe, 0x01); code_put(&loop_probe, 0x6a);
            code_put(&loop_probe, 0x22); code_u32(&loop_probe, counter);
            code_put(&loop_probe, 0x41); code_put(&loop_probe, 0xc0); code_put(&loop_probe, 0x00);
            code_put(&loop_probe, 0x46); code_put(&loop_probe, 0x04); code_put(&loop_probe, 0x40);
            code_put(&loop_probe, 0x10); code_u32(&loop_probe, flush_fn);
            code_put(&loop_probe, 0x21); code_u32(&loop_probe, counter);
            code_put(&loop_probe, 0x0b);
          }
          FLUSH_TO(p);
          put_bytes(out, loop_probe.bytes, loop_probe.length);
          stats[4]++;
        }
        copy_from = p;
        OPEN(wrapped ? 1 : 0);
        break;
      }
      case 0x0b: /* end */
        if (depth == 0) {
          if (loops) {
            FLUSH_TO(at);
            put_bytes(out, settle.bytes, settle.length);
            copy_from = at;
          }
          FLUSH_TO(p);
          if (p != end) { fail("a function body does not end at its end"); return 0; }
          if (failed) return 0; /* a malformed number on the way */
          fn->loops = (u8)loops;
          return 1;
        }
        depth--;
        if (is_wrapped[depth]) {
          if (!tail_head.length) {
            /* br 2 (done); end (yield); c = (the yield site: an i32, -1); br 0 (retry); end; unreachable; end (done) */
            code_put(&tail_head, 0x0c); code_put(&tail_head, 0x02); code_put(&tail_head, 0x0b);
            code_put(&tail_end, 0x21); code_u32(&tail_end, counter);
            code_put(&tail_end, 0x0c); code_put(&tail_end, 0x00); code_put(&tail_end, 0x0b);
            code_put(&tail_end, 0x00); code_put(&tail_end, 0x0b);
          }
          FLUSH_TO(p);
          put_bytes(out, tail_head.bytes, tail_head.length);
          add_site(out->length);
          put_bytes(out, tail_end.bytes, tail_end.length);
          copy_from = p;
          if (!BELOW) {
            close_nest();
            logging = 0;
          }
        }
        break;
      case 0x0a: case 0x19: /* throw_ref, catch_all */
        if (wrap) return USES_EXCEPTIONS;
        break;
      case 0x05: case 0x00: case 0x01: case 0x1a: case 0x1b: case 0xd1: case 0xd3: case 0xd4:
        break; /* else, unreachable, nop, drop, select, ref.is_null, ref.eq, ref.as_non_null */
      case 0x0f: /* return */
        if (loops) {
          FLUSH_TO(at);
          put_bytes(out, settle.bytes, settle.length);
          copy_from = at;
        }
        break;
      case 0x0c: case 0x0d: case 0xd5: case 0xd6: { /* br, br_if, br_on_null, br_on_non_null */
        u32 label; LEB(p, label);
        u32 below = BELOW;
        u32 crossed = label >= depth ? below : below - wrapped_up_to[depth - 1 - label];
        int exits = loops && label == depth; /* to the function's label: a way out */
        if (crossed || exits) {
          FLUSH_TO(at);
          if (exits) put_bytes(out, settle.bytes, settle.length);
          put_byte(out, op);
          put_u32(out, label + 3 * crossed);
          copy_from = p;
        }
        break;
      }
      case 0x0e: { /* br_table */
        u32 n; LEB(p, n);
        const u8 *labels = p;
        u32 below = BELOW;
        int exits = 0, crosses = 0;
        for (u32 i = 0; i <= n && !failed; i++) {
          u32 label; LEB(p, label);
          if (label >= depth) exits = 1;
          if (below - (label >= depth ? 0 : wrapped_up_to[depth - 1 - label]) > 0) crosses = 1;
          if (p > end) { fail("a function body ends without its end"); return 0; }
        }
        exits = exits && loops;
        if (exits || crosses) {
          FLUSH_TO(at);
          if (exits) put_bytes(out, settle.bytes, settle.length);
          put_byte(out, 0x0e);
          put_u32(out, n);
          const u8 *q = labels;
          for (u32 i = 0; i <= n; i++) {
            u32 label; LEB(q, label);
            put_u32(out, label + 3 * (below - (label >= depth ? 0 : wrapped_up_to[depth - 1 - label])));
          }
          copy_from = p;
        }
        break;
      }
      case 0x10: case 0x12: case 0xd2: { /* call, return_call, ref.func */
        u32 f; LEB(p, f);
        if (op != 0xd2 && BELOW) {
          nest_flushes[nest_count - 1] = 1;
          logging = 0;
        }
        if (op != 0xd2) {
          if (loops && (op == 0x12 || f < imported_funcs)) {
            FLUSH_TO(at);
            put_bytes(out, settle.bytes, settle.length);
            copy_from = at;
          }
          if (f >= imported_funcs && f - imported_funcs < defined_funcs) add_edge(f - imported_funcs, 0);
        } else {
          mark_referenced(f);
        }
        if (f >= yield_fn) {
          FLUSH_TO(at);
          put_byte(out, op);
          put_u32(out, f + 1);
          copy_from = p;
        }
        break;
      }
      case 0x11: case 0x13: case 0x14: case 0x15: { /* call_indirect, return_call_indirect, call_ref, return_call_ref */
        if (BELOW) {
          nest_flushes[nest_count - 1] = 1;
          logging = 0;
        }
        /* Copied up to here: a probe may go in front of it, once the call graph is known. */
        FLUSH_TO(at);
        if (loops && (op == 0x13 || op == 0x15)) put_bytes(out, settle.bytes, settle.length);
        copy_from = at;
        u32 type; LEB(p, type);
        if (op <= 0x13) p = skip_leb(p);
        add_edge(defined_funcs + (type < type_count ? type_class[type] : 0), out->length);
        break;
      }
      case 0x1f: { /* try_table */
        if (wrap) return USES_EXCEPTIONS;
        p = skip_block_type(p);
        u32 n; LEB(p, n);
        for (; n > 0 && !failed && p < end; n--) {
          u8 kind = *p++;
          if (kind <= 1) p = skip_leb(p);
          p = skip_leb(p);
        }
        OPEN(0);
        break;
      }
      case 0x18: /* delegate: ends its try */
        if (wrap) return USES_EXCEPTIONS;
        p = skip_leb(p);
        if (depth == 0) { fail("a delegate outside a try"); return 0; }
        depth--;
        break;
      case 0x07: case 0x08: case 0x09: /* catch, throw, rethrow */
        if (wrap) return USES_EXCEPTIONS;
        p = skip_leb(p);
        break;
      case 0x25: case 0x26: case 0x3f: case 0x40: /* table.get/set, memory.size/grow */
        p = skip_leb(p);
        break;
      case 0x1c: { /* select t* */
        u32 n; LEB(p, n);
        for (; n > 0 && !failed && p < end; n--) p = skip_valtype(p);
        break;
      }
      case 0x43: p += 4; break;
      case 0x44: p += 8; break;
      case 0xd0: p = skip_heap_type(p); break;
      case 0xfc: {
        u32 sub; LEB(p, sub);
        if (sub <= 7) break;
        if (sub == 8 || sub == 10 || sub == 12 || sub == 14) {
          p = skip_leb(p);
          p = skip_leb(p);
        } else if (sub <= 17) {
          p = skip_leb(p);
        } else {
          fail("an opcode (0xfc) that the yield hook does not know");
          return 0;
        }
        break;
      }
      case 0xfd: { /* SIMD */
        u32 sub; LEB(p, sub);
        if (sub <= 11 || sub == 92 || sub == 93) p = skip_memarg(p);
        else if (sub == 12 || sub == 13) p += 16;
        else if (sub >= 21 && sub <= 34) p++;
        else if (sub >= 84 && sub <= 91) p = skip_memarg(p) + 1;
        break;
      }
      case 0xfe: { /* atomics */
        u32 sub; LEB(p, sub);
        if (sub == 3) p++;
        else p = skip_memarg(p);
        break;
      }
      default:
        fail("an opcode that the yield hook does not know");
        return 0;
    }
  }
  fail("a function body ends without its end");
  return 0;
#undef BELOW
#undef OPEN
#undef FLUSH_TO
}

/* ---- Which functions and calls get a probe ------------------------------------------------ */

/*
 * Nodes: the defined functions, then one per type class (an indirect call's target: every
 * referenced function of that signature). Tarjan's algorithm, without recursion, twice:
 *  1. over every edge: an indirect call whose class is in a cycle gets a probe in front of it
 *     (C++'s virtual calls put most functions of a large program in one component through the
 *     table: probing their entries would probe nearly every function);
 *  2. without the edges through those classes: a function in a cycle now gets an entry probe, and
 *     so does one that can make more than MAX_UNPROBED activations of functions without one.
 * Components come out callees first, so each function's count is known before its callers need it.
 */
static u32 *type_from, *type_edges, *scc_index, *scc_low, *scc_stack, *scc_calls, *scc_next, *unprobed;
static u8 *scc_on_stack;

static void strongly_connected(u32 n, int second) {
#define CUT(w) (second && (w) >= defined_funcs && class_probed[(w) - defined_funcs])
#define EDGE_FROM(v) ((v) < defined_funcs ? funcs[v].edges_from : CUT(v) ? 0 : type_from[(v) - defined_funcs])
#define EDGE_TO(v) ((v) < defined_funcs ? funcs[v].edges_to : CUT(v) ? 0 : type_from[(v) - defined_funcs + 1])
#define EDGE(v, i) ((v) < defined_funcs ? edges[i] : type_edges[i])
  for (u32 v = 0; v < n; v++) { scc_index[v] = 0; scc_on_stack[v] = 0; }
  u32 counter = 0, sp = 0;
  for (u32 root = 0; root < n; root++) {
    if (scc_index[root]) continue;
    u32 csp = 0;
    scc_calls[csp++] = root;
    scc_index[root] = scc_low[root] = ++counter;
    scc_next[root] = EDGE_FROM(root);
    scc_stack[sp++] = root;
    scc_on_stack[root] = 1;
    while (csp) {
      u32 v = scc_calls[csp - 1];
      if (scc_next[v] < EDGE_TO(v)) {
        u32 w = EDGE(v, scc_next[v]);
        scc_next[v]++;
        if (!scc_index[w]) {
          scc_index[w] = scc_low[w] = ++counter;
          scc_next[w] = EDGE_FROM(w);
          scc_stack[sp++] = w;
          scc_on_stack[w] = 1;
          scc_calls[csp++] = w;
        } else if (scc_on_stack[w] && scc_index[w] < scc_low[v]) {
          scc_low[v] = scc_index[w];
        }
        continue;
      }
      csp--;
      if (csp && scc_low[v] < scc_low[scc_calls[csp - 1]]) scc_low[scc_calls[csp - 1]] = scc_low[v];
      if (scc_low[v] != scc_index[v]) continue;
      /* v is the root of a component: pop it. */
      u32 first = sp;
      do first--; while (scc_stack[first] != v);
      int cycle = sp - first > 1;
      if (!cycle && v < defined_funcs) {
        for (u32 i = funcs[v].edges_from; i < funcs[v].edges_to; i++)
          if (edges[i] == v) cycle = 1;
      }
      for (u32 k = first; k < sp; k++) {
        u32 w = scc_stack[k];
        scc_on_stack[w] = 0;
        if (!second) {
          if (w >= defined_funcs && cycle) {
            class_probed[w - defined_funcs] = 1;
          }
          continue;
        }
        if (w < defined_funcs) {
          if (cycle) {
            funcs[w].probed = 1;
            unprobed[w] = 0;
            stats[2]++;
          } else {
            u32 total = 1;
            for (u32 i = funcs[w].edges_from; i < funcs[w].edges_to && total <= MAX_UNPROBED; i++) total += unprobed[edges[i]];
            if (total > MAX_UNPROBED) {
              funcs[w].probed = 1;
              total = 0;
              stats[1]++;
            }
            unprobed[w] = total;
          }
        } else {
          /* An indirect call: the most any one target makes; none when the call has its own probe. */
          u32 most = 0;
          if (!CUT(w))
            for (u32 i = EDGE_FROM(w); i < EDGE_TO(w); i++)
              if (unprobed[type_edges[i]] > most) most = unprobed[type_edges[i]];
          unprobed[w] = most;
        }
      }
      sp = first;
    }
  }
#undef CUT
#undef EDGE_FROM
#undef EDGE_TO
#undef EDGE
}

static void choose_probes(void) {
  u32 n = defined_funcs + type_count;
  /* The type nodes' edges: to the referenced functions of each class. */
  type_from = alloc(4 * (type_count + 2));
  type_edges = alloc(4 * (defined_funcs + 1));
  scc_index = alloc(4 * n);
  scc_low = alloc(4 * n);
  scc_stack = alloc(4 * n);
  scc_calls = alloc(4 * n);
  scc_next = alloc(4 * n);
  unprobed = alloc(4 * n);
  scc_on_stack = alloc(n);
  class_probed = alloc(type_count + 1);
  u32 *fill = alloc(4 * (type_count + 1));
  if (failed) return;
  for (u32 t = 0; t <= type_count; t++) { type_from[t] = 0; class_probed[t] = 0; }
  for (u32 f = 0; f < defined_funcs; f++)
    if (referenced[f]) type_from[type_class[func_type[f]] + 1]++;
  for (u32 t = 0; t < type_count; t++) type_from[t + 1] += type_from[t];
  for (u32 t = 0; t <= type_count; t++) fill[t] = type_from[t];
  for (u32 f = 0; f < defined_funcs; f++)
    if (referenced[f]) type_edges[fill[type_class[func_type[f]]]++] = f;
  strongly_connected(n, 0);
  strongly_connected(n, 1);
}

/* ---- Putting it together ------------------------------------------------------------------- */

static const u8 *module_in; /* the input module */
static u8 *nest_kind;       /* per entry of nest_locals: its saved kind (SAVED_KINDS: not saved) */

/*
 * local_type's tables, so that a lookup walks no declarations: each type's parameters' first bytes
 * (made at the type's first lookup), and the local groups that declare any locals of the function
 * looked at last (made when the function changes; nests are closed, and planned, function by
 * function). A walk per lookup cost nests x locals x groups: 20 000 groups and 400 nests took 745 ms,
 * and a module of many (even empty) groups could keep a device's rewrite going for minutes.
 */
static u8 **param_first;    /* per type: its parameters' first bytes, or 0 until looked at */
static u32 groups_of;       /* the defined function whose groups are below, or NO_FUNCTION */
#define NO_FUNCTION 0xffffffffu
static u32 group_n, group_capacity;
static u32 *group_end;      /* per group with locals: the index past its last local (params not counted) */
static u8 *group_first;     /* per group with locals: its type's first byte */

/* The first byte of the type of local `local` of defined function `f`. */
static u8 local_type(u32 f, u32 local) {
  u32 t = func_type[f];
  if (local < type_params[t]) {
    if (!param_first) {
      param_first = alloc(sizeof(u8 *) * (type_count + 1));
      if (failed) return 0;
      __builtin_memset(param_first, 0, sizeof(u8 *) * (type_count + 1));
    }
    if (!param_first[t]) {
      u8 *first = alloc(type_params[t]);
      if (failed) return 0;
      const u8 *p = type_param_at[t];
      for (u32 i = 0; i < type_params[t]; i++) {
        first[i] = *p;
        p = skip_valtype(p);
      }
      param_first[t] = first;
    }
    return param_first[t][local];
  }
  local -= type_params[t];
  if (groups_of != f) {
    const u8 *p = module_in + funcs[f].locals_from;
    u32 end = 0; /* at most 100 000: the parse refused more */
    group_n = 0;
    for (u32 g = 0; g < funcs[f].groups; g++) {
      u32 n; LEB(p, n);
      if (n) {
        if (group_n == group_capacity) {
          u32 bigger = group_capacity ? group_capacity * 2 : 64;
          u32 *ends = alloc(4 * bigger);
          u8 *firsts = alloc(bigger);
          if (failed) return 0;
          if (group_n) {
            __builtin_memcpy(ends, group_end, 4 * group_n);
            __builtin_memcpy(firsts, group_first, group_n);
          }
          group_end = ends;
          group_first = firsts;
          group_capacity = bigger;
        }
        end += n;
        group_end[group_n] = end;
        group_first[group_n++] = *p;
      }
      p = skip_valtype(p);
    }
    groups_of = f;
  }
  /* the first group that ends past `local` */
  u32 lo = 0, hi = group_n;
  while (lo < hi) {
    u32 mid = lo + (hi - lo) / 2;
    if (group_end[mid] > local) hi = mid;
    else lo = mid + 1;
  }
  return lo < group_n ? group_first[lo] : 0;
}

static u32 nest_end(u32 n) { return n + 1 < nest_count ? nest_from[n + 1] : nest_local_count; }

/* Each nest's locals' kinds, and the globals the most demanding nest needs of each kind. */
static void plan_saves(void) {
  nest_kind = alloc(nest_local_count + 1);
  if (failed) return;
  for (u32 k = 0; k < SAVED_KINDS; k++) save_slots[k] = 0;
  for (u32 n = 0; n < nest_count; n++) {
    u32 count[SAVED_KINDS + 1] = {0};
    for (u32 i = nest_from[n]; i < nest_end(n); i++) {
      nest_kind[i] = (u8)saved_kind(local_type(nest_fn[n], nest_locals[i]));
      count[nest_kind[i]]++;
    }
    u32 ints = count[FIRST_INT_KIND] + count[FIRST_INT_KIND + 1];
    if (ints && ints < nest_end(n) - nest_from[n] - count[SAVED_KINDS]) {
      /* a nest with float or vector locals saves those only, as version 5 did */
      for (u32 i = nest_from[n]; i < nest_end(n); i++)
        if (nest_kind[i] >= FIRST_INT_KIND && nest_kind[i] < SAVED_KINDS) nest_kind[i] = SAVED_KINDS;
      count[SAVED_KINDS] += ints;
      count[FIRST_INT_KIND] = count[FIRST_INT_KIND + 1] = 0;
    } else if (ints > MAX_INT_SAVED) {
      nest_flushes[n] = 1;
      continue;
    }
    for (u32 k = 0; k < SAVED_KINDS; k++)
      if (count[k] > save_slots[k]) save_slots[k] = count[k];
    if (count[SAVED_KINDS] == nest_end(n) - nest_from[n]) nest_flushes[n] = 1; /* nothing to save: the short form */
  }
}

/* A yield site of nest `n`: its locals saved, `budget = dewgrid.yield(budget)`, its locals read back. */
static void put_site(Buf *out, u32 n) {
  if (nest_flushes[n]) { /* $flush() - 1 */
    put_byte(out, 0x10); put_u32(out, flush_fn);
    put_byte(out, 0x41); put_byte(out, 0x7f); put_byte(out, 0x6a);
    return;
  }
  /* budget -= LOOP_BATCH; if (budget < 1) { save; budget = dewgrid.yield(budget); restore }; -1 */
  put_byte(out, 0x23); put_u32(out, budget_global);
  put_byte(out, 0x41); put_s32(out, LOOP_BATCH); put_byte(out, 0x6b);
  put_byte(out, 0x24); put_u32(out, budget_global);
  put_byte(out, 0x23); put_u32(out, budget_global);
  put_byte(out, 0x41); put_byte(out, 0x01); put_byte(out, 0x48);
  put_byte(out, 0x04); put_byte(out, 0x40);
  u32 base[SAVED_KINDS];
  for (u32 k = 0, b = budget_global + 1; k < SAVED_KINDS; k++) { base[k] = b; b += save_slots[k]; }
  for (int restore = 0; restore < 2; restore++) {
    u32 next[SAVED_KINDS] = {0};
    for (u32 i = nest_from[n]; i < nest_end(n); i++) {
      u32 k = nest_kind[i];
      if (k == SAVED_KINDS) continue;
      u32 global = base[k] + next[k]++;
      put_byte(out, restore ? 0x23 : 0x20); put_u32(out, restore ? global : nest_locals[i]);
      put_byte(out, restore ? 0x21 : 0x24); put_u32(out, restore ? nest_locals[i] : global);
    }
    if (!restore) {
      put_byte(out, 0x23); put_u32(out, budget_global);
      put_byte(out, 0x10); put_u32(out, yield_fn);
      put_byte(out, 0x24); put_u32(out, budget_global);
    }
  }
  put_byte(out, 0x0b);
  put_byte(out, 0x41); put_byte(out, 0x7f);
}

/*
 * Each nest's yield site, written once (a nest has as many sites as wrapped loops): put_body copies
 * it, and the output's size is known before it is put together (a buffer that grows copies it all).
 */
static Buf site_code;
static u32 *site_code_from; /* nest n's site: from site_code_from[n] to site_code_from[n + 1] */

static void write_sites(void) {
  site_code_from = alloc(4 * (nest_count + 1));
  buf_init(&site_code, 64 + 16 * nest_count);
  if (failed) return;
  for (u32 n = 0; n < nest_count; n++) {
    site_code_from[n] = site_code.length;
    put_site(&site_code, n);
  }
  site_code_from[nest_count] = site_code.length;
}

/*
 * A function's rewritten instructions, with a probe in front of each indirect call whose class is
 * in a cycle, and its yield sites written in.
 */
__attribute__((noinline)) static void put_body(Buf *out, const Func *fn, const Buf *probe) {
  u32 from = fn->out_start;
  u32 i = fn->edges_from, j = fn->sites_from;
  for (;;) {
    while (i < fn->edges_to && (edges[i] < defined_funcs || !class_probed[edges[i] - defined_funcs])) i++;
    u32 edge = i < fn->edges_to ? edge_at[i] : ~0u;
    u32 site = j < fn->sites_to ? site_at[j] : ~0u;
    if (edge == ~0u && site == ~0u) break;
    if (edge < site) {
      put_moved(out, bodies.data + from, edge - from);
      put_bytes(out, probe->data, probe->length);
      from = edge;
      i++;
      stats[5]++;
    } else {
      put_moved(out, bodies.data + from, site - from);
      u32 n = site_nest[j];
      put_bytes(out, site_code.data + site_code_from[n], site_code_from[n + 1] - site_code_from[n]);
      from = site;
      j++;
    }
  }
  put_moved(out, bodies.data + from, fn->out_start + fn->out_length - from);
}

static void write_section(Buf *out, u8 id, const u8 *content, u32 size) {
  put_byte(out, id);
  put_u32(out, size);
  put_bytes(out, content, size);
}

static int is_name_section(const Section *s) {
  const u8 *p = s->content;
  u32 n = leb(&p);
  return n == 4 && p + 4 <= s->content + s->size && !bytes_differ(p, (const u8 *)"name", 4);
}

__attribute__((export_name("rw_input"))) u8 *rw_input(u32 length) {
  heap_top = HEAP_BASE;
  failed = 0;
  edge_count = edge_capacity = 0;
  block_capacity = 0;
  site_count = site_capacity = 0;
  nest_count = nest_capacity = nest_local_count = nest_local_capacity = 0;
  access_count = access_capacity = 0;
  local_mark_capacity = 0;
  nest_serial = 0;
  param_first = 0;
  groups_of = NO_FUNCTION;
  group_n = group_capacity = 0;
  error_text[0] = 0;
  for (int i = 0; i < 8; i++) stats[i] = 0;
  reserve((u64)length * 13 / 4 + (1u << 20));
  u8 *in = alloc(length + PADDING);
  if (in) __builtin_memset(in + length, 0, PADDING);
  return in;
}

__attribute__((export_name("rw_output"))) u8 *rw_output(void) { return output; }
__attribute__((export_name("rw_error"))) char *rw_error(void) { return error_text; }
/* 0 functions, 1 probed for their callees' count, 2 probed as in a cycle, 3 wrapped loops, 4 loops with the call inside, 5 indirect calls probed, 6 yield sites that save locals (in call-free nests), 7 the locals they save. */
__attribute__((export_name("rw_stat"))) u32 rw_stat(u32 i) { return i < 8 ? stats[i] : 0; }

__attribute__((export_name("rw_instrument"))) i32 rw_instrument(u8 *in, u32 length, u32 allowance) {
  if (length < 8 || in[0] != 0 || in[1] != 0x61 || in[2] != 0x73 || in[3] != 0x6d || in[4] != 1 || in[5] || in[6] || in[7]) {
    fail("not a WebAssembly module (version 1)");
    return -1;
  }
  const u8 *end = in + length;
  const u8 *p = in + 8;
  module_in = in;
  section_count = 0;
  while (p < end) {
    if (section_count == MAX_SECTIONS) { fail("too many sections"); return -1; }
    u8 id = *p++;
    u32 size = leb(&p);
    if (failed || size > (u32)(end - p)) { fail("the module ends early"); return -1; }
    sections[section_count].id = id;
    sections[section_count].content = p;
    sections[section_count].size = size;
    section_count++;
    p += size;
  }
  type_count = 0;
  imported_funcs = imported_globals = defined_funcs = defined_globals = 0;
  const Section *types = find(1), *imports = find(2), *functions = find(3), *globals = find(6), *code = find(10);
  if (types) read_types(types);
  if (!types) { type_params = alloc(4); type_class = alloc(4); type_param_at = alloc(sizeof(u8 *)); }
  if (imports) read_imports(imports);
  if (failed) return -1;
  if (functions) {
    p = functions->content;
    defined_funcs = leb(&p);
    if (defined_funcs > functions->size) { fail("the function section ends early"); return -1; }
  }
  func_type = alloc(4 * (defined_funcs + 1));
  referenced = alloc(defined_funcs + 1);
  funcs = alloc(sizeof(Func) * (defined_funcs + 1));
  if (failed) return -1;
  __builtin_memset(funcs, 0, sizeof(Func) * (defined_funcs + 1));
  for (u32 i = 0; i < defined_funcs; i++) {
    func_type[i] = leb(&p);
    if (func_type[i] >= type_count) { fail("a function of an unknown type"); return -1; }
    referenced[i] = 0;
  }
  if (globals) {
    p = globals->content;
    defined_globals = leb(&p);
  }
  yield_fn = imported_funcs;
  flush_fn = imported_funcs + 1 + defined_funcs;
  budget_global = imported_globals + defined_globals;
  stats[0] = defined_funcs;

  /* The smaller sections, rewritten into their own buffers. */
  Buf type_out, import_out, function_out, global_out, export_out, start_out, element_out;
  buf_init(&type_out, (types ? types->size : 0) + 32);
  put_u32(&type_out, type_count + 2);
  if (types) {
    p = types->content;
    leb(&p);
    put_bytes(&type_out, p, (u32)(types->content + types->size - p));
  }
  /* (i32) -> i32 for dewgrid.yield; () -> i32 for $flush */
  static const u8 new_types[] = {0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f};
  put_bytes(&type_out, new_types, sizeof new_types);

  buf_init(&import_out, (imports ? imports->size : 0) + 32);
  {
    u32 count = 0;
    if (imports) {
      p = imports->content;
      count = leb(&p);
    }
    put_u32(&import_out, count + 1);
    if (imports) put_bytes(&import_out, p, (u32)(imports->content + imports->size - p));
    static const u8 yield_import[] = {7, 'd', 'e', 'w', 'g', 'r', 'i', 'd', 5, 'y', 'i', 'e', 'l', 'd', 0x00};
    put_bytes(&import_out, yield_import, sizeof yield_import);
    put_u32(&import_out, type_count);
  }

  buf_init(&function_out, (functions ? functions->size : 0) + 16);
  put_u32(&function_out, defined_funcs + 1);
  if (functions) {
    p = functions->content;
    leb(&p);
    put_bytes(&function_out, p, (u32)(functions->content + functions->size - p));
  }
  put_u32(&function_out, type_count + 1);

  buf_init(&export_out, (find(7) ? find(7)->size : 0) + 32);
  rewrite_exports(find(7), &export_out);
  buf_init(&start_out, 8);
  if (find(8)) {
    p = find(8)->content;
    u32 f = leb(&p);
    mark_referenced(f);
    put_u32(&start_out, remap(f));
  }
  buf_init(&element_out, (find(9) ? find(9)->size : 0) + 16);
  if (find(9)) rewrite_elements(find(9), &element_out);
  if (failed) return -1;

  /* The output is later written over the arena, from below it: its tens of megabytes then need no
     memory of their own (a fresh instance's memory costs a page fault per 4 KiB touched). The gap
     before the arena takes the sections ahead of the code and what the bodies gain; what the output
     does not reach is never touched. Its size is a guess: when short, the output gets a buffer. */
  u8 *gap = alloc((code ? (u32)(length - code->size) + code->size / 4 : length) + 65536 + defined_funcs * 64);
  /* The code: each body's instructions rewritten into one arena; headers and entry probes later. */
  buf_init(&bodies, code ? code->size + code->size / 8 + 1024 : 1024);
  u8 *arena = bodies.data;
  /* Room for the call sites up front (yosys has one every 60 bytes of code): growing the arrays
     by doubling touched and copied twice the memory. What is not used is never touched. */
  if (code) {
    edge_capacity = code->size / 32 + 1024;
    edges = alloc(4 * edge_capacity);
    edge_at = alloc(4 * edge_capacity);
    if (failed) return -1;
  }
  if (code) {
    p = code->content;
    const u8 *code_end = code->content + code->size;
    u32 count = leb(&p);
    if (count != defined_funcs) { fail("the code and function sections disagree"); return -1; }
    for (u32 i = 0; i < count; i++) {
      u32 size = leb(&p);
      if (failed || size > (u32)(code_end - p)) { fail("the module ends early"); return -1; }
      const u8 *body_end = p + size;
      Func *fn = &funcs[i];
      u32 groups = leb(&p);
      u64 declared = 0;
      fn->locals_from = (u32)(p - in);
      for (u32 j = 0; j < groups && !failed; j++) {
        declared += leb(&p);
        p = skip_valtype(p);
        if (p > body_end) { fail("a function's locals run past its end"); return -1; }
      }
      if (declared > 100000) { fail("a function declares too many locals"); return -1; }
      fn->locals_to = (u32)(p - in);
      fn->groups = groups;
      fn->edges_from = edge_count;
      fn->sites_from = site_count;
      fn->out_start = bodies.length;
      u32 nests_before = nest_count, nest_locals_before = nest_local_count;
      current_fn = i;
      u32 counter_local = type_params[func_type[i]] + (u32)declared;
      int done = rewrite_body(p, body_end, &bodies, fn, counter_local, 1);
      if (done == USES_EXCEPTIONS) {
        bodies.length = fn->out_start;
        edge_count = fn->edges_from;
        site_count = fn->sites_from;
        nest_count = nests_before;
        nest_local_count = nest_locals_before;
        done = rewrite_body(p, body_end, &bodies, fn, counter_local, 0);
      }
      if (!done || failed) return -1;
      fn->out_length = bodies.length - fn->out_start;
      fn->edges_to = edge_count;
      fn->sites_to = site_count;
      p = body_end;
    }
  }
  choose_probes();
  plan_saves();
  for (u32 q = 0; q < site_count; q++)
    if (!nest_flushes[site_nest[q]]) {
      stats[6]++;
      for (u32 i = nest_from[site_nest[q]]; i < nest_end(site_nest[q]); i++) stats[7] += nest_kind[i] != SAVED_KINDS;
    }
  buf_init(&global_out, (globals ? globals->size : 0) + 16 + 32 * save_globals_total());
  rewrite_globals(globals, &global_out, allowance);
  if (failed) return -1;

  /* The whole module. */
  Buf entry;
  buf_init(&entry, 32);
  entry_probe_code(&entry);
  Buf flush;
  buf_init(&flush, 32);
  flush_code(&flush);
  write_sites();
  if (failed) return -1;
  /* The output's size at most, so that its buffer never grows: the input's sections but the code,
     the rewritten ones whole, and each body with all it may gain. */
  u64 most = (u64)length - (code ? code->size : 0) + 4096 + type_out.length + import_out.length + function_out.length + global_out.length +
             export_out.length + start_out.length + element_out.length + bodies.length + flush.length;
  for (u32 i = 0; i < defined_funcs; i++) most += 12 + entry.length + (funcs[i].locals_to - funcs[i].locals_from);
  for (u32 i = 0; i < edge_count; i++)
    if (edges[i] >= defined_funcs && class_probed[edges[i] - defined_funcs]) most += entry.length;
  for (u32 q = 0; q < site_count; q++) most += site_code_from[site_nest[q] + 1] - site_code_from[site_nest[q]];
  if (most > 0xffff0000ull) { fail("out of memory"); return -1; }
  Buf out;
  /* Over the arena if it did not move and the gap is wide enough: the output then ends at most
     where the arena's content does. The output holds the arena's bytes in order with insertions
     only, so the distance from a byte's place in the arena to its place in the output shrinks from
     the arena's start to its end, where it is still zero or more: every piece moves down (or
     stays), and the bytes not yet moved lie above what has been written. */
  if (gap && bodies.data == arena && (u64)(arena - gap) + bodies.length >= most) {
    out.data = arena + bodies.length - most;
    out.length = 0;
    out.capacity = (u32)most;
  } else {
    buf_init(&out, (u32)most);
  }
  put_bytes(&out, in, 8);
  static const u8 order[] = {1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11};
  Buf *rewritten[14] = {0};
  rewritten[1] = &type_out;
  rewritten[2] = &import_out;
  rewritten[3] = &function_out;
  rewritten[6] = &global_out;
  rewritten[7] = &export_out;
  if (find(8)) rewritten[8] = &start_out;
  if (find(9)) rewritten[9] = &element_out;
  u8 emitted[256] = {0};
  /* Sections in their required order: each present one where it was (custom ones too, but for
     "name", whose function indices would be wrong now), and before it the ones this adds that
     must precede it; the code section is put together here. */
  for (u32 pass = 0; pass <= section_count && !failed; pass++) {
    u32 id = pass < section_count ? sections[pass].id : 256;
    if (id == 0) {
      if (!is_name_section(&sections[pass])) write_section(&out, 0, sections[pass].content, sections[pass].size);
      continue;
    }
    for (u32 k = 0; k < sizeof order; k++) {
      u8 want = order[k];
      int its_turn = want == id;
      if (!its_turn && (find(want) && id != 256)) continue; /* present: emitted in its own turn */
      if (!its_turn && want != 10 && !rewritten[want]) continue;
      if (!emitted[want]) {
        emitted[want] = 1;
        if (want == 10) {
          put_byte(&out, 10);
          u32 size_at = out.length;
          put_bytes(&out, (const u8 *)"\0\0\0\0\0", 5);
          u32 content_at = out.length;
          put_u32(&out, defined_funcs + 1);
          for (u32 i = 0; i < defined_funcs && !failed; i++) {
            Func *fn = &funcs[i];
            u32 body_size_at = out.length;
            put_bytes(&out, (const u8 *)"\0\0\0\0\0", 5);
            u32 body_at = out.length;
            put_u32(&out, fn->groups + (fn->loops ? 1 : 0));
            put_bytes(&out, in + fn->locals_from, fn->locals_to - fn->locals_from);
            if (fn->loops) {
              put_byte(&out, 0x01); /* the loop counter: one i32 more */
              put_byte(&out, 0x7f);
            }
            if (fn->probed) put_bytes(&out, entry.data, entry.length);
            put_body(&out, fn, &entry);
            if (!failed) put_u32_padded_at(out.data + body_size_at, out.length - body_at);
          }
          put_u32(&out, flush.length);
          put_bytes(&out, flush.data, flush.length);
          if (!failed) put_u32_padded_at(out.data + size_at, out.length - content_at);
        } else if (rewritten[want]) {
          write_section(&out, want, rewritten[want]->data, rewritten[want]->length);
        } else {
          const Section *s = find(want);
          write_section(&out, want, s->content, s->size);
        }
      }
      if (its_turn) break;
    }
  }
  if (failed) return -1;
  output = out.data;
  return (i32)out.length;
}
