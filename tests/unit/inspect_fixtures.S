/*
 * inspect_fixtures.S — hand-made code for tests/unit/test_inspect*.c:
 * WRPKRU and XRSTOR byte sequences in every place the inspector tells
 * apart (ERIM's cases).  Never executed: the tests only inspect these
 * bytes, in the test binary's file and in its memory (and the rewriter's
 * tests rewrite them).
 *
 * After them: fx_call, a harness that calls a block with every register
 * set, and the runnable blocks of inspect_run_blocks.inc, as data (fxr_*,
 * not executable: the tests copy them into anonymous executable memory)
 * and, with -DFX_RUN_IN_TEXT, also as code (fxt_*, for the static
 * rewriting test).  See inspect_run_blocks.h.
 *
 * Each case is a function (a symbol the inspector decodes from), and a
 * global label fx_<case>_hit marks the sequence's 0F byte.  Each function
 * starts with an instruction that is not part of the case, so that no hit
 * label coincides with a function symbol.  The encodings noted in the
 * comments were checked with objdump -d.
 */

#define FIXTURE(name) .globl name; .type name, @function; name:
#define END(name) .size name, . - name
#define HIT(name) .globl name; name:
/* .set would copy the function's type and size: a label is no function */
#define HIT_AT(name, where) .globl name; .set name, where; \
	.type name, @notype; .size name, 0

	.text
	.p2align 6
	.globl	fx_begin
fx_begin:

/* ---- real instructions ---------------------------------------------- */

FIXTURE(fx_real_wrpkru)
	xorl	%ecx, %ecx
	xorl	%edx, %edx
HIT(fx_real_wrpkru_hit)
	wrpkru				/* 0f 01 ef */
	ret
END(fx_real_wrpkru)

FIXTURE(fx_real_xrstor)
	movl	$-1, %eax
HIT(fx_real_xrstor_hit)
	xrstor	(%rdi)			/* 0f ae 2f */
	ret
END(fx_real_xrstor)

FIXTURE(fx_real_xrstor64)
	movl	$-1, %eax
	.byte	0x48			/* REX.W: xrstor64 (%rdi) = 48 0f ae 2f */
HIT(fx_real_xrstor64_hit)
	.byte	0x0f, 0xae, 0x2f
	ret
END(fx_real_xrstor64)

FIXTURE(fx_real_xrstors)
	movl	$-1, %eax
HIT(fx_real_xrstors_hit)
	xrstors	(%rdi)			/* 0f c7 1f */
	ret
END(fx_real_xrstors)

/* legal prefixes: segment override and REX.W, xrstor64 %fs:(%rax) */
FIXTURE(fx_real_prefixed)
	movl	$-1, %eax
	.byte	0x64, 0x48		/* 64 48 0f ae 28 */
HIT(fx_real_prefixed_hit)
	.byte	0x0f, 0xae, 0x28
	ret
END(fx_real_prefixed)

/* ---- spanning instructions ------------------------------------------- */

/* mov $0x0f,%al; add %ebp,%edi = b0 0f | 01 ef */
FIXTURE(fx_span_wrpkru)
	nop
	movb	$0x0f, %al
	addl	%ebp, %edi
	ret
END(fx_span_wrpkru)
HIT_AT(fx_span_wrpkru_hit, fx_span_wrpkru + 2)

/* over three: mov $0x0f,%al; scas; sub %al,%al = b0 0f | ae | 28 c0 */
FIXTURE(fx_span_xrstor)
	nop
	movb	$0x0f, %al
	scasb	%es:(%rdi), %al
	subb	%al, %al
	ret
END(fx_span_xrstor)
HIT_AT(fx_span_xrstor_hit, fx_span_xrstor + 2)

/* ---- inside one instruction ------------------------------------------- */

/* immediate: mov $0xef010f,%eax = b8 0f 01 ef 00 */
FIXTURE(fx_in_imm_wrpkru)
	nop
	movl	$0xef010f, %eax
	ret
END(fx_in_imm_wrpkru)
HIT_AT(fx_in_imm_wrpkru_hit, fx_in_imm_wrpkru + 2)

/* displacement: mov 0xef010f(%rax),%eax = 8b 80 0f 01 ef 00 */
FIXTURE(fx_in_disp_wrpkru)
	nop
	movl	0xef010f(%rax), %eax
	ret
END(fx_in_disp_wrpkru)
HIT_AT(fx_in_disp_wrpkru_hit, fx_in_disp_wrpkru + 3)

/* ModRM, then immediate: imul $0xef01,(%rdi),%ecx = 69 0f 01 ef 00 00
 * (ModRM 0f: mod 00, reg ecx, rm (%rdi)) */
FIXTURE(fx_in_modrm)
	nop
	imull	$0xef01, (%rdi), %ecx
	ret
END(fx_in_modrm)
HIT_AT(fx_in_modrm_hit, fx_in_modrm + 2)

/* SIB, then displacement: mov 0xef01(%rdi,%rcx,1),%eax
 * = 8b 84 0f 01 ef 00 00 (SIB 0f: scale 1, index rcx, base rdi) */
FIXTURE(fx_in_sib)
	nop
	movl	0xef01(%rdi,%rcx,1), %eax
	ret
END(fx_in_sib)
HIT_AT(fx_in_sib_hit, fx_in_sib + 3)

/* opcode: palignr $0xef,(%rcx),%xmm0 = 66 0f 3a 0f 01 ef; the second 0f
 * is palignr's opcode byte */
FIXTURE(fx_in_opcode)
	nop
	palignr	$0xef, (%rcx), %xmm0
	ret
END(fx_in_opcode)
HIT_AT(fx_in_opcode_hit, fx_in_opcode + 4)

/* XRSTOR in an immediate: mov $0x28ae0f,%eax = b8 0f ae 28 00 */
FIXTURE(fx_in_imm_xrstor)
	nop
	movl	$0x28ae0f, %eax
	ret
END(fx_in_imm_xrstor)
HIT_AT(fx_in_imm_xrstor_hit, fx_in_imm_xrstor + 2)

/* XRSTOR64 in an immediate, REX.W included:
 * movabs $0x2fae0f48aabbccdd,%rax = 48 b8 dd cc bb aa 48 0f ae 2f */
FIXTURE(fx_in_imm_xrstor64)
	nop
	movabsq	$0x2fae0f48aabbccdd, %rax
	ret
END(fx_in_imm_xrstor64)
HIT_AT(fx_in_imm_xrstor64_hit, fx_in_imm_xrstor64 + 8)

/* XRSTORS in an immediate: mov $0x1fc70f,%eax = b8 0f c7 1f 00 */
FIXTURE(fx_in_imm_xrstors)
	nop
	movl	$0x1fc70f, %eax
	ret
END(fx_in_imm_xrstors)
HIT_AT(fx_in_imm_xrstors_hit, fx_in_imm_xrstors + 2)

/* ---- no instruction holds it --------------------------------------- */

/* mov $imm32,%eax cut short by the next function: b8 0f | 01 ef 00; the
 * sweep does not decode across a function start */
FIXTURE(fx_cut)
	.byte	0xb8, 0x0f
END(fx_cut)
FIXTURE(fx_cut_next)
	.byte	0x01, 0xef, 0x00
	ret
END(fx_cut_next)
HIT_AT(fx_cut_hit, fx_cut + 1)

/* ---- across pages ------------------------------------------------------ */

/* One function over three pages, decoded from its start: a mov whose
 * immediate holds the 0f at the second-last byte of the first page and the
 * ef on the next, and a real wrpkru whose 0f is the last byte of the
 * second page. */
	.p2align 12
FIXTURE(fx_pages)
	.fill	4093, 1, 0x90		/* nops */
	movl	$0xef010f, %eax		/* b8 at 4093, 0f 4094, 01 4095, ef 4096 */
	.fill	4093, 1, 0x90		/* up to the second page's last byte */
HIT(fx_page_real_hit)
	wrpkru				/* 0f at 8191, 01 ef on the third page */
	ret
END(fx_pages)
HIT_AT(fx_page_imm_hit, fx_pages + 4094)

	.globl	fx_end
fx_end:

/* ---- the control: near misses only ------------------------------------ */

/* Encodings one byte away from a hit: rdpkru (0f 01 ee), lfence
 * (0f ae e8, mod 3), 0f ae ef (mod 3, reg 5), xsave (0f ae /4),
 * xsavec (0f c7 /4), xsaves (0f c7 /5), cmpxchg16b (0f c7 /1),
 * fxrstor (0f ae /1), rdseed (0f c7 /7 mod 3), and the bytes reversed. */
	.p2align 6
FIXTURE(fx_clean)
	xorl	%ecx, %ecx
	rdpkru
	lfence
	.byte	0x0f, 0xae, 0xef
	xsave	(%rdi)
	xsavec	(%rdi)
	xsaves	(%rdi)
	cmpxchg16b (%rdi)
	fxrstor	(%rdi)
	rdseed	%eax
	movl	$0x0f01ef, %eax		/* b8 ef 01 0f 00 */
	movl	$0x01ef0f, %eax		/* b8 0f ef 01 00 */
	movl	$0xee010f, %eax		/* b8 0f 01 ee 00 */
	movl	$0xe8ae0f, %eax		/* b8 0f ae e8 00: mod 3 */
	movl	$0x20ae0f, %eax		/* b8 0f ae 20 00: reg 4 */
	ret
END(fx_clean)
	.globl	fx_clean_end
fx_clean_end:

/* ---- the harness ------------------------------------------------------ */

/* void fx_call(const struct fx_regs *in, struct fx_regs *out,
 *              const void *fn)
 * Loads rax rbx rcx rdx rsi rdi rbp r8-r15 and RFLAGS (offsets 0, 8, ...
 * 120) from in, calls fn, and stores the same registers into out.  No
 * hit: it is in the text the tests inspect. */
	.p2align 4
FIXTURE(fx_call)
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushq	%rsi			/* out */
	pushq	%rdx			/* fn, at 0(%rsp) */
	movq	%rdi, %rax
	pushq	120(%rax)
	popfq
	movq	8(%rax), %rbx
	movq	16(%rax), %rcx
	movq	24(%rax), %rdx
	movq	32(%rax), %rsi
	movq	40(%rax), %rdi
	movq	48(%rax), %rbp
	movq	56(%rax), %r8
	movq	64(%rax), %r9
	movq	72(%rax), %r10
	movq	80(%rax), %r11
	movq	88(%rax), %r12
	movq	96(%rax), %r13
	movq	104(%rax), %r14
	movq	112(%rax), %r15
	movq	0(%rax), %rax
	call	*(%rsp)
	pushq	%rax
	pushfq
	movq	24(%rsp), %rax		/* out, above the flags, rax and fn */
	popq	120(%rax)
	popq	0(%rax)
	movq	%rbx, 8(%rax)
	movq	%rcx, 16(%rax)
	movq	%rdx, 24(%rax)
	movq	%rsi, 32(%rax)
	movq	%rdi, 40(%rax)
	movq	%rbp, 48(%rax)
	movq	%r8, 56(%rax)
	movq	%r9, 64(%rax)
	movq	%r10, 72(%rax)
	movq	%r11, 80(%rax)
	movq	%r12, 88(%rax)
	movq	%r13, 96(%rax)
	movq	%r14, 104(%rax)
	movq	%r15, 112(%rax)
	addq	$16, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
END(fx_call)

/* ---- runnable blocks ---------------------------------------------------- */

/* as data: copied by the tests into anonymous executable memory */
	.section .rodata.fx_run, "a"
	.p2align 6
#define RUN(n) .p2align 4; .globl fxr_##n; fxr_##n:
#define RUN_END(n) .globl fxr_##n##_end; fxr_##n##_end:
#include "inspect_run_blocks.inc"
#undef RUN
#undef RUN_END

#ifdef FX_RUN_IN_TEXT
/* as code, one function each (the static rewriting test); without the
 * refused block unless FX_RUN_REFUSED_IN_TEXT */
	.text
	.p2align 6
#ifndef FX_RUN_REFUSED_IN_TEXT
#define FX_RUN_REWRITABLE_ONLY
#endif
#define RUN(n) .p2align 4; FIXTURE(fxt_##n)
#define RUN_END(n) END(fxt_##n)
#include "inspect_run_blocks.inc"
#endif

	.section .note.GNU-stack, "", @progbits
