"""Run a command on a pseudo-terminal, as a person at a keyboard would: each time the output shows the next prompt,
type the next answer. Usage: pty-run.py PROMPT1 ANSWER1 [PROMPT2 ANSWER2 ...] -- COMMAND ARGS...
Prints everything the terminal showed, then exits with the command's exit status."""
import os, pty, select, sys

sep = sys.argv.index('--')
pairs = sys.argv[1:sep]
cmd = sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
shown = b''
steps = [(pairs[i].encode(), pairs[i + 1].encode()) for i in range(0, len(pairs), 2)]
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
    if steps and steps[0][0] in shown.split(b'\n')[-1]:
        os.write(fd, steps.pop(0)[1])
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode('utf8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
