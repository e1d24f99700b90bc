// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * tcpulse's XDP program: keeps TCP, and the carriers of the encapsulations tcpulse's decoder
 * follows, for the AF_XDP socket of the receiving queue; hands everything else to the kernel.
 *
 * For each frame:
 *   1. Classify: Ethernet, up to two VLAN tags (802.1Q, 802.1ad, old QinQ 0x9100), IPv4 or IPv6
 *      (skipping up to four extension headers); wanted are TCP (IP protocol 6, first fragment
 *      or not), IP-in-IP (4, 41), GRE and ERSPAN (47), UDP to the VXLAN, GENEVE and GRE-in-UDP
 *      ports or from or to the GTP-U, Teredo and AYIYA ports, MPLS and PPPoE session frames.
 *      What a tunnel carries is for the decoder to tell (it counts what is not TCP).
 *   2. The rest goes to the kernel (XDP_PASS) unless the config map says capture_all.
 *   3. Captured frames get a struct tcpulse_meta in the metadata area in front of the packet
 *      (bpf_xdp_adjust_meta): bpf_ktime_get_ns() and, when asked for and the driver has one,
 *      its receive timestamp.
 *   4. Redirect to xsks[rx_queue_index]; with no socket bound on that queue, bpf_redirect_map
 *      returns the fallback action in its flags, XDP_PASS, so the kernel still gets the frame.
 *
 * The layout of struct tcpulse_meta, the config map and the counters are an ABI shared with
 * src/capture/xdp/meta.rs and program.rs; change both together.
 *
 * Built by build.rs with clang -O2 -g -target bpf and embedded in the tcpulse binary.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Proves the metadata was written for this packet: see meta.rs. */
#define TCPULSE_META_MAGIC 0x7c9e1a5eU

/* tcpulse_meta.flags */
#define TCPULSE_META_HW 1U /* hw_ns holds the driver's rx timestamp */

struct tcpulse_meta {
	__u64 hw_ns;     /* driver rx timestamp through the XDP metadata kfunc, or 0 */
	__u64 kernel_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 flags;
	__u32 magic;     /* last, so it sits right in front of the packet */
};

struct tcpulse_cfg {
	__u32 capture_all; /* redirect every frame, not only TCP */
	__u32 hw_timestamp; /* ask the driver for its rx timestamp first */
};

/* Per-CPU counters, indexed by these constants; summed by user space. */
enum {
	CNT_TCP_REDIRECTED = 0, /* TCP and tunnel carriers */
	CNT_OTHER_REDIRECTED = 1, /* the rest, taken because of capture_all */
	CNT_NON_TCP_PASSED = 2,
	CNT_NO_SOCKET = 3,  /* wanted, but no AF_XDP socket on this queue: passed */
	CNT_NO_META = 4,    /* driver has no metadata area: captured without timestamp */
	CNT_HW_TS = 5,      /* timestamp from the driver */
	CNT_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} tcpulse_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcpulse_cfg);
} tcpulse_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tcpulse_cnt SEC(".maps");

/* Resolved against the kernel's BTF at load time; only tcpulse_xdp_hw calls it. It returns an
 * error when the driver does not implement it; __weak keeps older kernels loading. */
extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym __weak;

#define ETH_P_8021AD_ 0x88A8
#define ETH_P_QINQ_OLD 0x9100
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_IPIP_ 4
#define IPPROTO_IPV6_ 41
#define IPPROTO_GRE_ 47
#define ETH_P_MPLS_UC_ 0x8847
#define ETH_P_MPLS_MC_ 0x8848
#define ETH_P_PPP_SES_ 0x8864

struct udp_ports {
	__be16 src;
	__be16 dst;
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&tcpulse_cnt, &idx);

	if (v)
		*v += 1;
}

/* 1 for TCP and the IP protocols of tunnels. */
static __always_inline int wanted_protocol(__u8 p)
{
	return p == IPPROTO_TCP || p == IPPROTO_IPIP_ || p == IPPROTO_IPV6_ || p == IPPROTO_GRE_;
}

/* 1 for a UDP header (at `udp`) of a tunnel the decoder follows. */
static __always_inline int wanted_udp(void *udp, void *data_end)
{
	struct udp_ports *ports = udp;
	__u16 src, dst;

	if ((void *)(ports + 1) > data_end)
		return 0;
	src = bpf_ntohs(ports->src);
	dst = bpf_ntohs(ports->dst);
	/* VXLAN, GENEVE, GRE-in-UDP: to the port (their source port is a flow hash). */
	if (dst == 4789 || dst == 6081 || dst == 4754)
		return 1;
	/* GTP-U, Teredo, AYIYA: replies come from the port. */
	return src == 2152 || dst == 2152 || src == 3544 || dst == 3544 || src == 5072 ||
	       dst == 5072;
}

/* 1 when the frame carries TCP or a tunnel or encapsulation the decoder follows, 0 otherwise
 * (including frames too short to tell). */
static __always_inline int is_wanted(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	void *cur = data + sizeof(*eth);
	__u16 proto;
	__u8 next;
	int i;

	if (cur > data_end)
		return 0;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < 2; i++) {
		struct vlan_tag *tag = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD_) &&
		    proto != bpf_htons(ETH_P_QINQ_OLD))
			break;
		if ((void *)(tag + 1) > data_end)
			return 0;
		proto = tag->proto;
		cur = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_MPLS_UC_) || proto == bpf_htons(ETH_P_MPLS_MC_) ||
	    proto == bpf_htons(ETH_P_PPP_SES_))
		return 1;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;

		if ((void *)(ip + 1) > data_end)
			return 0;
		if (ip->protocol == IPPROTO_UDP)
			return wanted_udp(cur + ip->ihl * 4, data_end);
		return wanted_protocol(ip->protocol);
	}
	if (proto != bpf_htons(ETH_P_IPV6))
		return 0;

	struct ipv6hdr *ip6 = cur;

	if ((void *)(ip6 + 1) > data_end)
		return 0;
	next = ip6->nexthdr;
	cur = ip6 + 1;

	/* A bounded loop (kernel 5.3+); clang does not unroll it because of the variable stride. */
	for (i = 0; i < 4; i++) {
		__u8 *ext = cur;
		__u32 len;

		if (wanted_protocol(next))
			return 1;
		if (next == IPPROTO_UDP)
			return wanted_udp(cur, data_end);
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_FRAGMENT_ && next != IPPROTO_AH_)
			return 0;
		if ((void *)(ext + 2) > data_end)
			return 0;
		if (next == IPPROTO_FRAGMENT_)
			len = 8;
		else if (next == IPPROTO_AH_)
			len = ((__u32)ext[1] + 2) * 4;
		else
			len = ((__u32)ext[1] + 1) * 8;
		next = ext[0];
		cur = ext + len;
	}
	if (next == IPPROTO_UDP)
		return wanted_udp(cur, data_end);
	return wanted_protocol(next);
}

/* Writes the metadata; returns 0 on success. */
static __always_inline int stamp(struct xdp_md *ctx, __u32 hw)
{
	struct tcpulse_meta *meta;
	void *data;
	__u64 kernel_ns = bpf_ktime_get_ns();
	__u64 hw_ns = 0;
	__u32 flags = 0;

	if (hw && bpf_xdp_metadata_rx_timestamp) {
		if (bpf_xdp_metadata_rx_timestamp(ctx, &hw_ns) == 0 && hw_ns != 0)
			flags = TCPULSE_META_HW;
		else
			hw_ns = 0;
	}

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct tcpulse_meta)) != 0)
		return -1;
	/* adjust_meta moved data_meta; every pointer has to be reloaded and checked again. */
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data)
		return -1;
	meta->hw_ns = hw_ns;
	meta->kernel_ns = kernel_ns;
	meta->flags = flags;
	meta->magic = TCPULSE_META_MAGIC;
	if (flags & TCPULSE_META_HW)
		count(CNT_HW_TS);
	return 0;
}

static __always_inline int handle(struct xdp_md *ctx, __u32 hw)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct tcpulse_cfg *cfg = bpf_map_lookup_elem(&tcpulse_cfg, &zero);
	__u32 capture_all = cfg ? cfg->capture_all : 0;
	int tcp = is_wanted(data, data_end);
	int action;

	if (!tcp && !capture_all) {
		count(CNT_NON_TCP_PASSED);
		return XDP_PASS;
	}
	if (stamp(ctx, hw && cfg && cfg->hw_timestamp) != 0)
		count(CNT_NO_META);

	action = bpf_redirect_map(&tcpulse_xsks, ctx->rx_queue_index, XDP_PASS);
	if (action == XDP_REDIRECT)
		count(tcp ? CNT_TCP_REDIRECTED : CNT_OTHER_REDIRECTED);
	else
		count(CNT_NO_SOCKET);
	return action;
}

/* The program loaded by default: kernel timestamps only. */
SEC("xdp")
int tcpulse_xdp(struct xdp_md *ctx)
{
	return handle(ctx, 0);
}

/* The variant that asks the driver for its receive timestamp. The kernel accepts the metadata
 * kfunc only in a device-bound program (loaded for one interface, native mode), so this one is
 * loaded instead of tcpulse_xdp only when driver timestamps are requested. */
SEC("xdp")
int tcpulse_xdp_hw(struct xdp_md *ctx)
{
	return handle(ctx, 1);
}

/* GPL-compatible, which kfuncs require; MIT as the rest of tcpulse. */
char _license[] SEC("license") = "Dual MIT/GPL";
