/*
 * pause: PID 1 of a pod sandbox. It holds the pod's namespaces open, reaps the zombies of a pod
 * that shares its process namespace, and exits 0 on SIGINT or SIGTERM.
 *
 * Freestanding: no libc, raw system calls, `_start` as the entry point. Built by
 * crates/containerd/build.rs with:
 *   -nostdlib -static -no-pie -Os -ffreestanding -fno-stack-protector
 *   -fno-asynchronous-unwind-tables -Wl,--build-id=none -s
 *
 * The three signals are blocked and taken with rt_sigtimedwait, so no handler runs: a blocked
 * signal is still queued for the init of a PID namespace (the kernel drops only signals that are
 * unblocked and have the default action), and nothing can interrupt the loop half-way.
 */

#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define SIG_BLOCK 0
#define WNOHANG 1
#define EINTR 4

#if defined(__x86_64__)
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_rt_sigtimedwait 128
#define SYS_exit_group 231

static long syscall4(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The kernel enters with %rsp 16-byte aligned and pointing at argc; a C function expects the
 * alignment of a call, so `_start` realigns and calls. */
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	and $-16, %rsp\n"
	"	call pause_main\n"
	"	hlt\n");

#elif defined(__aarch64__)
#define SYS_exit_group 94
#define SYS_rt_sigprocmask 135
#define SYS_rt_sigtimedwait 137
#define SYS_wait4 260

static long syscall4(long nr, long a, long b, long c, long d)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
			 : "memory");
	return x0;
}

/* The kernel enters with sp 16-byte aligned: clear the frame and link registers and call. */
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	bl pause_main\n"
	"1:	b 1b\n");

#else
#error "pause: only x86_64 and aarch64 are supported"
#endif

#define SIGBIT(sig) (1UL << ((sig) - 1))

__attribute__((noreturn)) static void exit_group(int code)
{
	for (;;)
		syscall4(SYS_exit_group, code, 0, 0, 0);
}

/* Reaps every child that has exited; returns when none is left to reap right now. */
static void reap(void)
{
	for (;;) {
		long pid = syscall4(SYS_wait4, -1, 0, WNOHANG, 0);
		if (pid == -EINTR)
			continue;
		if (pid <= 0) /* 0: children left, none exited; -ECHILD: no children */
			return;
	}
}

__attribute__((noreturn, used)) void pause_main(void)
{
	/* The kernel's sigset_t on both architectures: one 64-bit word. */
	unsigned long set = SIGBIT(SIGINT) | SIGBIT(SIGTERM) | SIGBIT(SIGCHLD);

	if (syscall4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof(set)) < 0)
		exit_group(1);

	/* A process that became our child and exited before the mask was set sent a SIGCHLD the
	 * kernel discarded (its default action is to ignore it): reap once now. */
	reap();

	for (;;) {
		long sig = syscall4(SYS_rt_sigtimedwait, (long)&set, 0, 0, sizeof(set));
		if (sig == SIGINT || sig == SIGTERM)
			exit_group(0);
		if (sig == SIGCHLD)
			reap();
		/* -EINTR (a stop/continue) and anything else: wait again. */
	}
}
