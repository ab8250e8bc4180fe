# Reads the per-block CSV that call6/timeline.patch writes (NVRAR_EXP_TL=file; not kept here, 10 MB per case) and
# prints, per kind of GEMM (medians over the 32 layers), the phases of a launch and the gaps between launches, in us.
import csv, sys, statistics as st
from collections import defaultdict
L = defaultdict(list)
meta = {}
for r in csv.DictReader(open(sys.argv[1])):
    c = int(r['counter']); meta[c] = (int(r['n']), int(r['k']), int(r['variant']))
    L[c].append([int(r['t%d' % i]) for i in range(5)])
names = {(6144,4096):'qkv',(4096,4096):'o_proj',(28672,4096):'gate/up',(4096,14336):'down',(128256,4096):'lm_head'}
cs = sorted(L)
t_base = min(b[0] for b in L[cs[0]])
rows = []
for c in cs:
    B = L[c]
    n,k,v = meta[c]
    e0 = min(b[0] for b in B); e1 = max(b[0] for b in B)
    w0 = min(b[1] for b in B); w1 = max(b[1] for b in B)
    f = sorted(b[2]-b[1] for b in B)
    l0 = min(b[3] for b in B); l1 = max(b[3] for b in B)
    end = max(b[4] for b in B)
    rows.append(dict(c=c, name=names.get((n,k),str((n,k))), v=v, blocks=len(B), e0=e0, e1=e1, w0=w0, w1=w1,
                     first_med=f[len(f)//2], l0=l0, l1=l1, end=end, bytes=n*k*2))
# per kind aggregates over layers
agg = defaultdict(lambda: defaultdict(list))
for i, r in enumerate(rows):
    a = agg[r['name']]
    a['entry_spread'].append((r['e1']-r['e0'])/1e3)
    a['wait0_after_entry0'].append((r['w0']-r['e0'])/1e3)   # how long the first block waited
    a['wait_spread'].append((r['w1']-r['w0'])/1e3)
    a['first_iter_med'].append(r['first_med']/1e3)
    a['body'].append((r['l1']-r['w0'])/1e3)              # from first wait release to last main-loop end
    a['tail'].append((r['l1']-r['l0'])/1e3)              # first to last main-loop end
    a['epilogue'].append((r['end']-r['l1'])/1e3)
    a['rate_TBps'].append(r['bytes']/((r['l1']-r['w0'])/1e9)/1e12)
    if i+1 < len(rows):
        nx = rows[i+1]
        a['to_next_wait'].append((nx['w0']-r['end'])/1e3)     # this GEMM's last store -> next GEMM's first release
        a['next_entry_vs_loopend'].append((nx['e0']-r['l1'])/1e3)
print('launches', len(rows), 'step span %.1f us' % ((rows[-1]['end']-rows[0]['e0'])/1e3))
keys = ['entry_spread','wait0_after_entry0','wait_spread','first_iter_med','body','tail','epilogue','rate_TBps','to_next_wait','next_entry_vs_loopend']
print('%-8s %4s ' % ('gemm','cnt') + ' '.join('%10s' % k[:10] for k in keys))
for name in ['qkv','o_proj','gate/up','down','lm_head']:
    a = agg[name]
    print('%-8s %4d ' % (name, len(a['body'])) + ' '.join('%10.2f' % (st.median(a[k]) if a[k] else float('nan')) for k in keys))
# sum of time from each GEMM's first wait release to its last loop end, vs the step
tot_body = sum((r['l1']-r['w0']) for r in rows)/1e3
tot_gap = sum((rows[i+1]['w0']-rows[i]['l1']) for i in range(len(rows)-1))/1e3
print('sum body %.1f us, sum (last loop end -> next first release) %.1f us' % (tot_body, tot_gap))
for name in ['qkv','o_proj','gate/up','down','lm_head']:
    ideal = [r for r in rows if r['name']==name]
    byt = sum(r['bytes'] for r in ideal); body = sum(r['l1']-r['w0'] for r in ideal)/1e3
    print('%-8s bytes %.2f GB body %.1f us -> %.2f TB/s' % (name, byt/1e9, body, byt/(body/1e6)/1e12))
