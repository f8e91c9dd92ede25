/*
 * /init of the QEMU guest that runs MPK tests on machines whose CPU has no
 * protection keys (tests/lib/qemu_guest.py builds the initramfs and boots
 * it under TCG, which emulates PKU).  It has two modes.
 *
 * Programs (/mpktls-tests exists): it mounts /proc and /sys, runs every
 * program listed there (one absolute path a line) with TAP output, frames
 * each run with marker lines on the console, and powers the guest off.
 *
 * Command (/mpktls-command exists): the file is a script of NUL-separated
 * words, executed in order, that qemu_guest.run_command wrote:
 *
 *   insmod PATH                          load a kernel module
 *   mkdir PATH MODE UID GID              mkdir -p, then chmod/chown (-1: no)
 *   mount SRC TARGET FSTYPE FLAGS DATA   mount(2); "" is NULL
 *   lo                                   bring the loopback interface up
 *   output PATH                          the command's stdout and stderr
 *   root PATH | cwd PATH | timeout SECONDS | env NAME=VALUE | arg WORD
 *   run                                  run the command so described
 *
 * The command runs as root in a new session, chrooted into root, at cwd,
 * with exactly the env given and stdin from /dev/null.  When it ends (or
 * the timeout kills it), every other process is killed, the file systems
 * are synced and the guest powers off.  The console carries
 * "@@MPKTLS-COMMAND-START", then "@@MPKTLS-COMMAND-END status=N" (a wait
 * status) or "@@MPKTLS-COMMAND-END timeout"; a failed step prints
 * "@@MPKTLS-SETUP-FAILED ..." and powers off.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORDS 4096

static void
power_off(void)
{
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    _exit(0);
}

static void
run(const char *path)
{
    pid_t pid;
    int status = -1;

    printf("@@MPKTLS-BEGIN %s\n", path);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char *argv[] = { (char *) path, NULL };

        setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 1);
        execv(path, argv);
        perror("execv");
        _exit(127);
    }
    if (pid > 0) {
        waitpid(pid, &status, 0);
    }
    printf("@@MPKTLS-END %s status=%d\n", path, status);
    fflush(stdout);
}

static void
run_programs(void)
{
    char line[4096];
    FILE *list;

    list = fopen("/mpktls-tests", "r");
    if (list != NULL) {
        while (fgets(line, sizeof(line), list) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            if (line[0] == '/') {
                run(line);
            }
        }
        fclose(list);
    }
    printf("@@MPKTLS-DONE\n");
}

/* ---- command mode ------------------------------------------------------ */

static void
setup_failed(const char *what, const char *arg)
{
    printf("@@MPKTLS-SETUP-FAILED %s %s: %s\n", what, arg, strerror(errno));
    power_off();
}

static double
uptime(void)
{
    double up = -1;
    FILE *f = fopen("/proc/uptime", "r");

    if (f != NULL) {
        if (fscanf(f, "%lf", &up) != 1) {
            up = -1;
        }
        fclose(f);
    }
    return up;
}

static void
mkdir_p(const char *path)
{
    char buf[4096];
    size_t i;

    snprintf(buf, sizeof(buf), "%s", path);
    for (i = 1; buf[i] != '\0'; i++) {
        if (buf[i] == '/') {
            buf[i] = '\0';
            mkdir(buf, 0755);
            buf[i] = '/';
        }
    }
    mkdir(buf, 0755);
}

static void
load_module(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        setup_failed("insmod", path);
    }
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) {
        setup_failed("insmod", path);
    }
    close(fd);
}

static void
loopback_up(void)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
        setup_failed("lo", "SIOCGIFFLAGS");
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
        setup_failed("lo", "SIOCSIFFLAGS");
    }
    close(s);
}

static volatile sig_atomic_t alarmed;

static void
on_alarm(int sig)
{
    (void) sig;
    alarmed = 1;
}

struct command {
    const char *output, *root, *cwd;
    unsigned timeout;
    char *argv[MAX_WORDS], *envp[MAX_WORDS];
    int argc, envc;
};

static void
run_command(struct command *c)
{
    struct sigaction sa;
    int status = 0, timed_out = 0;
    pid_t pid, w;

    if (c->argc == 0) {
        errno = EINVAL;
        setup_failed("run", "(no arg)");
    }
    c->argv[c->argc] = NULL;
    c->envp[c->envc] = NULL;
    printf("@@MPKTLS-COMMAND-START uptime=%.2f\n", uptime());
    fflush(stdout);

    pid = fork();
    if (pid < 0) {
        setup_failed("fork", c->argv[0]);
    }
    if (pid == 0) {
        int out = open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
                       0644);
        int in = open("/dev/null", O_RDONLY);

        if (out < 0 || in < 0) {
            perror(c->output);
            _exit(126);
        }
        setsid();
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close(in);
        close(out);
        if (chroot(c->root) != 0 || chdir(c->cwd) != 0) {
            fprintf(stderr, "guest_init: chroot %s, chdir %s: %s\n",
                    c->root, c->cwd, strerror(errno));
            _exit(126);
        }
        signal(SIGPIPE, SIG_DFL);
        environ = c->envp;          /* execvp searches this env's PATH */
        execvp(c->argv[0], c->argv);
        fprintf(stderr, "guest_init: %s: %s\n", c->argv[0], strerror(errno));
        _exit(127);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;       /* no SA_RESTART: waitpid returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    alarm(c->timeout);
    for (;;) {
        int st;

        w = waitpid(-1, &st, 0);
        if (w == pid) {
            status = st;
            break;
        }
        if (w < 0 && errno == EINTR && alarmed && !timed_out) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        } else if (w < 0 && errno == ECHILD) {
            break;
        }
    }
    alarm(0);

    /* what the command left running (daemons, other sessions) */
    kill(-1, SIGKILL);
    alarmed = 0;
    alarm(10);
    while (waitpid(-1, NULL, 0) > 0 || (errno == EINTR && !alarmed)) {
    }
    alarm(0);
    sync();
    if (timed_out) {
        printf("@@MPKTLS-COMMAND-END timeout uptime=%.2f\n", uptime());
    } else {
        printf("@@MPKTLS-COMMAND-END status=%d uptime=%.2f\n", status,
               uptime());
    }
    fflush(stdout);
}

static char *
next_word(char **p, char *end)
{
    char *w = *p;

    if (w >= end) {
        errno = EINVAL;
        setup_failed("script", "truncated");
    }
    *p = w + strlen(w) + 1;
    return w;
}

static void
run_script(const char *path)
{
    static struct command c;
    struct stat st;
    char *buf, *p, *end;
    int fd = open(path, O_RDONLY);

    if (fd < 0 || fstat(fd, &st) != 0) {
        setup_failed("open", path);
    }
    buf = malloc(st.st_size + 1);
    if (buf == NULL || read(fd, buf, st.st_size) != st.st_size) {
        setup_failed("read", path);
    }
    close(fd);
    buf[st.st_size] = '\0';
    c.output = "/dev/console";
    c.root = "/";
    c.cwd = "/";
    c.timeout = 600;

    p = buf;
    end = buf + st.st_size;
    while (p < end) {
        char *op = next_word(&p, end);

        if (strcmp(op, "insmod") == 0) {
            load_module(next_word(&p, end));
        } else if (strcmp(op, "mkdir") == 0) {
            char *dir = next_word(&p, end);
            long mode = strtol(next_word(&p, end), NULL, 8);
            long uid = strtol(next_word(&p, end), NULL, 10);
            long gid = strtol(next_word(&p, end), NULL, 10);

            mkdir_p(dir);
            if ((mode >= 0 && chmod(dir, mode) != 0)
                || ((uid >= 0 || gid >= 0) && chown(dir, uid, gid) != 0)) {
                setup_failed("mkdir", dir);
            }
        } else if (strcmp(op, "mount") == 0) {
            char *src = next_word(&p, end);
            char *target = next_word(&p, end);
            char *type = next_word(&p, end);
            unsigned long flags = strtoul(next_word(&p, end), NULL, 10);
            char *data = next_word(&p, end);

            if (mount(src, target, type[0] ? type : NULL, flags,
                      data[0] ? data : NULL) != 0) {
                printf("@@MPKTLS-SETUP-FAILED mount %s on %s (%s, %s): %s\n",
                       src, target, type, data, strerror(errno));
                power_off();
            }
        } else if (strcmp(op, "lo") == 0) {
            loopback_up();
        } else if (strcmp(op, "output") == 0) {
            c.output = next_word(&p, end);
        } else if (strcmp(op, "root") == 0) {
            c.root = next_word(&p, end);
        } else if (strcmp(op, "cwd") == 0) {
            c.cwd = next_word(&p, end);
        } else if (strcmp(op, "timeout") == 0) {
            c.timeout = strtoul(next_word(&p, end), NULL, 10);
        } else if (strcmp(op, "env") == 0 && c.envc < MAX_WORDS - 1) {
            c.envp[c.envc++] = next_word(&p, end);
        } else if (strcmp(op, "arg") == 0 && c.argc < MAX_WORDS - 1) {
            c.argv[c.argc++] = next_word(&p, end);
        } else if (strcmp(op, "run") == 0) {
            run_command(&c);
        } else {
            errno = EINVAL;
            setup_failed("script", op);
        }
    }
}

int
main(void)
{
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    /* no tmpfs on /tmp: the initramfs root is writable already, and the
     * programs may live under /tmp (a clone there) */
    setenv("PATH", "/usr/bin:/bin", 1);

    if (access("/mpktls-command", F_OK) == 0) {
        run_script("/mpktls-command");
    } else {
        run_programs();
    }
    power_off();
    return 0;
}
