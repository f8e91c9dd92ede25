/*
 * The program of test_inspect_rewrite_static.py: built with the fixtures
 * (tests/unit/inspect_fixtures.S -DFX_RUN_IN_TEXT: every class in .text,
 * and the runnable blocks as functions), then rewritten by
 * `mpk-inspect --rewrite`.  It runs each runnable block from its .text
 * copy (rewritten in the output) and from a copy of the data version in
 * anonymous executable memory (never rewritten: the original), with the
 * same random registers, flags and buffer, and exits 0 only if every run
 * agrees.  Blocks that write PKRU (real_mix) are not run: no MPK here.
 *
 * Output: one line per block, then "blocks: N run, N agree".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../inspect/inspect.h"         /* INSPECT_RULE_* */
#define FX_TEXT 1
#include "../unit/inspect_run_blocks.h"

static const struct fx_block fx_blocks[] = { FX_BLOCKS(FX_ENTRY) };
#define NBLOCKS (sizeof(fx_blocks) / sizeof(*fx_blocks))
#define TRIALS 500

int
main(void)
{
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 2;
    size_t run = 0, agree = 0;
    for (size_t i = 0; i < NBLOCKS; i++) {
        const struct fx_block *b = &fx_blocks[i];
        if (!b->runs || !b->text)
            continue;
        /* the original: the data copy, executable */
        if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0)
            return 2;
        memset(page, 0xcc, 4096);
        memcpy(page, b->start, (size_t) (b->end - b->start));
        if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0)
            return 2;
        char diff[200] = "";
        bool ok = fx_compare(b, page, b->text, TRIALS,
                             0x2545f4914f6cdd1dull + i, diff, sizeof(diff));
        run++;
        agree += ok;
        printf("%s: %s%s%s\n", b->name, ok ? "same" : "DIFFERENT",
               ok ? "" : ": ", diff);
    }
    printf("blocks: %zu run, %zu agree\n", run, agree);
    return run > 0 && agree == run ? 0 : 1;
}
