/*
 * The floor for any stdio proxy: starts COMMAND and copies bytes client→server and server→client with
 * poll(2) and no parsing at all. "echo via C relay" minus "echo direct" is what one more process hop
 * (two more pipe writes and wake-ups per round trip) costs on this machine; a gateway's own cost is
 * what it adds beyond that.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: relay COMMAND [ARGS...]\n"); return 2; }
    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) { perror("pipe"); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to_child[0], 0); dup2(from_child[1], 1);
        close(to_child[0]); close(to_child[1]); close(from_child[0]); close(from_child[1]);
        execvp(argv[1], argv + 1);
        perror("exec"); _exit(127);
    }
    close(to_child[0]); close(from_child[1]);
    signal(SIGPIPE, SIG_IGN);
    struct pollfd fds[2] = { { 0, POLLIN, 0 }, { from_child[0], POLLIN, 0 } };
    int outs[2] = { to_child[1], 1 };
    char buf[1 << 16];
    for (;;) {
        if (poll(fds, 2, -1) < 0) { perror("poll"); break; }
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) goto done;
            for (ssize_t w = 0; w < n;) {
                ssize_t k = write(outs[i], buf + w, (size_t)(n - w));
                if (k <= 0) goto done;
                w += k;
            }
        }
    }
done:
    close(to_child[1]);
    int status;
    waitpid(pid, &status, 0);
    return 0;
}
