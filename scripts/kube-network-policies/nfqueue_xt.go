// Added by scripts/tools.sh to sigs.k8s.io/kube-network-policies v0.8.0 (not upstream code). Upstream sends the
// packets it evaluates to its queue with nf_tables' own queue expression (nft_queue); the test machines' kernel is
// built without it (CONFIG_NFT_QUEUE unset, no modules) but with xtables' NFQUEUE target, which nf_tables runs
// through nft_compat. This is that target with the same queue number and the same bypass flag: the rules, the sets
// and the verdicts stay upstream's.
package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// nfqueueTarget is `-j NFQUEUE --queue-num <queueID> [--queue-bypass]` (revision 3).
func nfqueueTarget(queueID int, bypass bool) *expr.Target {
	// struct xt_NFQ_info_v3 {__u16 queuenum; __u16 queues_total; __u16 flags;}, padded to 8 bytes (XT_ALIGN)
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], uint16(queueID))
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
