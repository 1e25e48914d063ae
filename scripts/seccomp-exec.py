#!/usr/bin/python3
"""Run a command under a Docker/OCI seccomp profile, without a container runtime.

    /usr/bin/python3 scripts/seccomp-exec.py seccomp-profile.json -- node packages/server/dist/cli.js

Loads the profile the way runc does (libseccomp; unknown syscall names skipped; conditions on
distinct arguments ANDed in one rule, conditions repeating an argument index added as separate
rules), sets no_new_privs (as `no-new-privileges:true` does), then execs the command, so the very
first syscall under the filter is the execve of the command: the same order as in a container.

Stricter than runc in one way: runc answers ENOSYS for syscalls newer than every name in the
profile; this loader answers the profile's default errno. A command that runs here runs there.

Needs the libseccomp Python bindings: apt-get install -y python3-seccomp (run with /usr/bin/python3).
"""
import json
import os
import sys

import seccomp

ACTIONS = {
    'SCMP_ACT_ALLOW': lambda errno: seccomp.ALLOW,
    'SCMP_ACT_ERRNO': lambda errno: seccomp.ERRNO(errno),
    'SCMP_ACT_KILL': lambda errno: seccomp.KILL,
    'SCMP_ACT_KILL_THREAD': lambda errno: seccomp.KILL,
    'SCMP_ACT_KILL_PROCESS': lambda errno: seccomp.KILL_PROCESS,
    'SCMP_ACT_TRAP': lambda errno: seccomp.TRAP,
    'SCMP_ACT_LOG': lambda errno: seccomp.LOG,
}
OPS = {
    'SCMP_CMP_NE': seccomp.NE,
    'SCMP_CMP_LT': seccomp.LT,
    'SCMP_CMP_LE': seccomp.LE,
    'SCMP_CMP_EQ': seccomp.EQ,
    'SCMP_CMP_GE': seccomp.GE,
    'SCMP_CMP_GT': seccomp.GT,
    'SCMP_CMP_MASKED_EQ': seccomp.MASKED_EQ,
}
ARCHES = {
    'SCMP_ARCH_X86_64': seccomp.Arch.X86_64,
    'SCMP_ARCH_AARCH64': seccomp.Arch.AARCH64,
    'SCMP_ARCH_X86': seccomp.Arch.X86,
    'SCMP_ARCH_X32': seccomp.Arch.X32,
    'SCMP_ARCH_ARM': seccomp.Arch.ARM,
}
EPERM = 1


def action(name, errno):
    if name not in ACTIONS:
        raise SystemExit(f'seccomp-exec: unsupported action {name!r}')
    return ACTIONS[name](errno)


def load(profile_path):
    with open(profile_path, encoding='utf-8') as f:
        profile = json.load(f)
    default_errno = profile.get('defaultErrnoRet', EPERM)
    filt = seccomp.SyscallFilter(action(profile['defaultAction'], default_errno))
    for arch in profile.get('architectures', []):
        if arch in ARCHES and ARCHES[arch] != seccomp.Arch.NATIVE:
            try:
                filt.add_arch(ARCHES[arch])
            except Exception:  # already present (the native one) or unsupported here
                pass
    skipped = []
    for entry in profile.get('syscalls', []):
        act = action(entry['action'], entry.get('errnoRet', default_errno))
        args = entry.get('args') or []
        conds = [seccomp.Arg(a['index'], OPS[a['op']], a['value'], a.get('valueTwo', 0)) for a in args]
        indexes = [a['index'] for a in args]
        repeated = len(indexes) != len(set(indexes))
        for name in entry.get('names', []):
            try:
                known = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) != -1
            except Exception:
                known = False
            if not known:
                skipped.append(name)
                continue
            try:
                if not conds:
                    filt.add_rule(act, name)
                elif repeated:
                    for c in conds:
                        filt.add_rule(act, name, c)
                else:
                    filt.add_rule(act, name, *conds)
            except Exception:  # a name no listed architecture has
                skipped.append(name)
    return filt, skipped


def main(argv):
    if len(argv) < 3 or '--' not in argv:
        sys.stderr.write('usage: seccomp-exec.py PROFILE.json -- COMMAND [ARGS...]\n')
        return 2
    sep = argv.index('--')
    profile_path, command = argv[1], argv[sep + 1:]
    if not command:
        sys.stderr.write('seccomp-exec: no command after --\n')
        return 2
    filt, skipped = load(profile_path)
    if skipped and os.environ.get('SECCOMP_EXEC_VERBOSE'):
        sys.stderr.write(f'seccomp-exec: not on this architecture, skipped: {" ".join(sorted(set(skipped)))}\n')
    filt.load()  # sets no_new_privs first (libseccomp's default)
    os.execvp(command[0], command)
    return 127


if __name__ == '__main__':
    sys.exit(main(sys.argv))
