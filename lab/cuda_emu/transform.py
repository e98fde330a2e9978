# Rewrites a CUDA source for the emulator: kernel launches k<<<g, b, s, st>>>(args)
# become EMU_LAUNCH(g, b, s, k(args)) and the dynamic shared-memory array
# becomes the emulator's. Usage: transform.py IN OUT
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'extern __shared__ (?:__align__\(\d+\) )?double (\w+)\[\];', r'#define \1 emu_dyn_shared', s)
pat = re.compile(r'(\w+(?:<[\w, ]+>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def rep(m):
    cfg = [c.strip() for c in m.group(2).split(',')]
    while len(cfg) < 3: cfg.append('0')
    return 'EMU_LAUNCH((%s), (%s), (%s), %s(%s));' % (cfg[0], cfg[1], cfg[2], m.group(1), m.group(3))
s, n = pat.subn(rep, s)
sys.stderr.write("%s: launches rewritten: %d\n" % (sys.argv[1], n))
open(sys.argv[2], 'w').write(s)
