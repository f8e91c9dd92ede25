/*
 * /init of the QEMU guest that runs the MPK unit tests on machines whose
 * CPU has no protection keys (tests/run_all.py builds the initramfs and
 * boots it under TCG, which emulates PKU).
 *
 * It mounts /proc and /sys, runs every program listed in
 * /mpktls-tests (one absolute path a line) with TAP output, frames each
 * run with marker lines on the console, and powers the guest off.
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

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

int
main(void)
{
    char line[4096];
    FILE *list;

    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    /* no tmpfs on /tmp: the initramfs root is writable already, and the
     * programs may live under /tmp (a clone there) */
    setenv("PATH", "/usr/bin:/bin", 1);

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
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
