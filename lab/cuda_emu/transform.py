# Rewrites a CUDA source for the emulator: kernel launches k<<<g, b, s, st>>>(args)
# become emu_launch_k(g, b, s, st, [](auto... a) { k(a...); }, args) (the
# arguments evaluated and copied at the launch, as CUDA copies kernel
# parameters; s and st default to 0) and the dynamic shared-memory array
# becomes the emulator's. Usage: transform.py IN OUT
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'extern __shared__ (?:__align__\(\d+\) )?double (\w+)\[\];', r'#define \1 emu_dyn_shared', s)
pat = re.compile(r'(\w+(?:<[\w, ]+>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def rep(m):
    cfg = [c.strip() for c in m.group(2).split(',')]
    if len(cfg) < 2 or len(cfg) > 4:
        sys.exit("%s: cannot read the launch configuration <<<%s>>>" % (sys.argv[1], m.group(2)))
    while len(cfg) < 4: cfg.append('0')
    args = m.group(3).strip()
    return 'emu_launch_k(dim3(%s), dim3(%s), (size_t) (%s), (%s), [](auto... emu_a) { %s(emu_a...); }%s);' % (
        cfg[0], cfg[1], cfg[2], cfg[3], m.group(1), ', ' + args if args else '')
s, n = pat.subn(rep, s)
sys.stderr.write("%s: launches rewritten: %d\n" % (sys.argv[1], n))
open(sys.argv[2], 'w').write(s)
