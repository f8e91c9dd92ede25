/*
 * ks_gate.S — the only way into the keystore (T).
 *
 *     long ks_gate_call(unsigned op, void *args);
 *
 * This file holds the only two WRPKRU instructions of mpk-tls, at the
 * global labels ks_gate_enter_wrpkru and ks_gate_leave_wrpkru; the
 * inspector registers exactly these two sites as safe.
 *
 * Enter: WRPKRU to the T value, then straight on: claim the one T stack
 * (an atomic in-use flag; a second thread entering at the same time, or a
 * re-entry, aborts the process: two threads never share a T stack), switch
 * to it and call ks_dispatch(op, args), which validates everything.
 *
 * Leave: back to the caller's stack, release the T stack, scrub vector
 * state (zmm/ymm/xmm 0-31 and k0-k7 where present) and caller-saved
 * registers, WRPKRU to the U value and compare the value written with the
 * U value again (ERIM): an attacker who jumps straight to the WRPKRU with
 * a T-granting EAX fails that check and the process aborts.
 *
 * Jumping anywhere else gains nothing: past the enter WRPKRU, T memory is
 * not accessible, so the flag access faults; into the middle of the enter
 * path, the code validates op and args like any call; the PKRU values and
 * the vector-state level are read from ks_gate_page, which is read-only
 * after ks_domain_init() (and sealed at lockdown), so they cannot be
 * forged.  T's own state (the flag, the saved U stack pointer, the T stack
 * top) lives in T memory.
 */

	.set	KS_GATE_VEC_AVX, 1		/* ks_gate_vec values */
	.set	KS_GATE_VEC_AVX512, 2

/* The gate's constants: one page, written by ks_domain_init() and then
 * made read-only; U must read it too (the check after leaving T). */
	.section .data.ks_gate_page, "aw", @progbits
	.balign	4096
	.globl	ks_gate_page
	.hidden	ks_gate_page
ks_gate_page:
ks_gate_pkru_t:	.long	0		/* PKRU in T: the keystore's key open */
ks_gate_pkru_u:	.long	0		/* PKRU in U: the key denied */
ks_gate_vec:	.long	0		/* which vector state to scrub */
	.balign	4096

/* T state: in the keystore's data, tagged with the key. */
	.data
	.balign	64
	.globl	ks_gate_tstack_top
	.hidden	ks_gate_tstack_top
ks_gate_tstack_top:	.quad	0	/* top of the T stack */
ks_gate_saved_rsp:	.quad	0	/* the caller's stack while in T */
ks_gate_busy:		.long	0	/* 1 while a thread is in T */

	.text
	.globl	ks_gate_call
	.type	ks_gate_call, @function
ks_gate_call:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movl	%edi, %r12d			/* op and args survive WRPKRU */
	movq	%rsi, %r13

	movl	ks_gate_pkru_t(%rip), %eax
	xorl	%ecx, %ecx			/* WRPKRU needs ECX = EDX = 0 */
	xorl	%edx, %edx
	.globl	ks_gate_enter_wrpkru
	.hidden	ks_gate_enter_wrpkru
ks_gate_enter_wrpkru:
	wrpkru

	/* In T from here on.  Claim the T stack; faults if T is not open. */
	lock btsl $0, ks_gate_busy(%rip)
	jc	ks_gate_abort
	movq	%rsp, ks_gate_saved_rsp(%rip)
	movq	ks_gate_tstack_top(%rip), %rsp
	movl	%r12d, %edi
	movq	%r13, %rsi
	call	ks_dispatch
	movq	%rax, %r12			/* the result */
	movq	ks_gate_saved_rsp(%rip), %rsp
	movl	$0, ks_gate_busy(%rip)

	/* Scrub: nothing T computed may stay in a register U can read.
	 * (KS_GATE_NO_SCRUB exists only for the test build that shows the
	 * register test finds key bytes when nothing scrubs them.) */
#ifndef KS_GATE_NO_SCRUB
	cmpl	$KS_GATE_VEC_AVX512, ks_gate_vec(%rip)
	jne	1f
	vpxord	%zmm0, %zmm0, %zmm0	/* a zmm write clears its ymm/xmm */
	vpxord	%zmm1, %zmm1, %zmm1
	vpxord	%zmm2, %zmm2, %zmm2
	vpxord	%zmm3, %zmm3, %zmm3
	vpxord	%zmm4, %zmm4, %zmm4
	vpxord	%zmm5, %zmm5, %zmm5
	vpxord	%zmm6, %zmm6, %zmm6
	vpxord	%zmm7, %zmm7, %zmm7
	vpxord	%zmm8, %zmm8, %zmm8
	vpxord	%zmm9, %zmm9, %zmm9
	vpxord	%zmm10, %zmm10, %zmm10
	vpxord	%zmm11, %zmm11, %zmm11
	vpxord	%zmm12, %zmm12, %zmm12
	vpxord	%zmm13, %zmm13, %zmm13
	vpxord	%zmm14, %zmm14, %zmm14
	vpxord	%zmm15, %zmm15, %zmm15
	vpxord	%zmm16, %zmm16, %zmm16
	vpxord	%zmm17, %zmm17, %zmm17
	vpxord	%zmm18, %zmm18, %zmm18
	vpxord	%zmm19, %zmm19, %zmm19
	vpxord	%zmm20, %zmm20, %zmm20
	vpxord	%zmm21, %zmm21, %zmm21
	vpxord	%zmm22, %zmm22, %zmm22
	vpxord	%zmm23, %zmm23, %zmm23
	vpxord	%zmm24, %zmm24, %zmm24
	vpxord	%zmm25, %zmm25, %zmm25
	vpxord	%zmm26, %zmm26, %zmm26
	vpxord	%zmm27, %zmm27, %zmm27
	vpxord	%zmm28, %zmm28, %zmm28
	vpxord	%zmm29, %zmm29, %zmm29
	vpxord	%zmm30, %zmm30, %zmm30
	vpxord	%zmm31, %zmm31, %zmm31
	kxorw	%k0, %k0, %k0		/* a 16-bit k write clears all 64 bits */
	kxorw	%k1, %k1, %k1
	kxorw	%k2, %k2, %k2
	kxorw	%k3, %k3, %k3
	kxorw	%k4, %k4, %k4
	kxorw	%k5, %k5, %k5
	kxorw	%k6, %k6, %k6
	kxorw	%k7, %k7, %k7
	jmp	3f
1:	cmpl	$KS_GATE_VEC_AVX, ks_gate_vec(%rip)
	jne	2f
	vzeroall			/* ymm0-15 */
	jmp	3f
2:	pxor	%xmm0, %xmm0		/* SSE only: xmm0-15 */
	pxor	%xmm1, %xmm1
	pxor	%xmm2, %xmm2
	pxor	%xmm3, %xmm3
	pxor	%xmm4, %xmm4
	pxor	%xmm5, %xmm5
	pxor	%xmm6, %xmm6
	pxor	%xmm7, %xmm7
	pxor	%xmm8, %xmm8
	pxor	%xmm9, %xmm9
	pxor	%xmm10, %xmm10
	pxor	%xmm11, %xmm11
	pxor	%xmm12, %xmm12
	pxor	%xmm13, %xmm13
	pxor	%xmm14, %xmm14
	pxor	%xmm15, %xmm15
#endif
3:	xorl	%esi, %esi		/* caller-saved GPRs; rax is the result */
	xorl	%edi, %edi
	xorl	%r8d, %r8d
	xorl	%r9d, %r9d
	xorl	%r10d, %r10d
	xorl	%r11d, %r11d

	movl	ks_gate_pkru_u(%rip), %eax
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	.globl	ks_gate_leave_wrpkru
	.hidden	ks_gate_leave_wrpkru
ks_gate_leave_wrpkru:
	wrpkru
	cmpl	ks_gate_pkru_u(%rip), %eax	/* ERIM: was it really U's value? */
	jne	ks_gate_abort
	movq	%r12, %rax
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	ks_gate_call, .-ks_gate_call

/* A broken gate invariant: say so and end the process at once with
 * exit_group(70), without unwinding or handlers (a U signal handler must
 * never get to resume with T's PKRU).  If a filter U installed made
 * exit_group fail, ud2 ends it with SIGILL. */
	.section .rodata
ks_gate_abort_msg:
	.ascii	"mpk-tls: keystore gate check failed; ending the process\n"
	.set	KS_GATE_ABORT_MSG_LEN, . - ks_gate_abort_msg

	.text
	.type	ks_gate_abort, @function
ks_gate_abort:
	movl	$1, %eax			/* write(2, msg, len) */
	movl	$2, %edi
	leaq	ks_gate_abort_msg(%rip), %rsi
	movl	$KS_GATE_ABORT_MSG_LEN, %edx
	syscall
	movl	$231, %eax			/* exit_group(70) */
	movl	$70, %edi
	syscall
	ud2
	.size	ks_gate_abort, .-ks_gate_abort

	.section .note.GNU-stack, "", @progbits
