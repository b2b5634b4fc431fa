/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Flood detector. Each CPU measures its own new-flow rate over a window. Above flood_enter_rate
 * the CPU stops writing session entries (pure Maglev: a SYN flood cannot evict the sessions
 * that keep real connections on their backend). It returns to normal only once the rate has
 * stayed below flood_exit_rate for flood_hold jiffies (hysteresis, so it does not flap).
 * Evaluated only when a new flow arrives: the mode matters only then, and the clock is read
 * only on that path. Python applies the same rules to report the mode between new flows. */
#ifndef SHOAL_SYNGUARD_H
#define SHOAL_SYNGUARD_H

#include "lib/consts.h"
#include "lb_maps.h"
#include "shoal_abi.h"

/* Longer gaps are clamped so rate arithmetic cannot overflow (jiffies; an hour at HZ=1000). */
#define FLOOD_MAX_ELAPSED (3600ULL * 1000)

static __always_inline void flood_set_mode(struct shoal_flood_state *st, __u32 mode, __u64 now)
{
	st->mode = mode;
	st->changed = now;
	if (mode)
		st->entries += 1;
	else
		st->exits += 1;
	st->calm_since = 0;
}

/* Records one new flow; returns 1 when this CPU is in flood mode. */
static __always_inline int flood_note_new_flow(const struct shoal_config *cfg, __u64 now)
{
	__u32 zero = 0;
	struct shoal_flood_state *st = bpf_map_lookup_elem(&shoal_flood_v1, &zero);
	if (!st || !cfg->flood_enter_rate)
		return 0;
	/* No new flow at all for the hold-down: the flood is over, whatever the open window says. */
	if (st->mode && now - st->last_flow >= cfg->flood_hold) {
		flood_set_mode(st, 0, now);
		st->window_start = now;
		st->window_flows = 0;
	}
	st->last_flow = now;
	st->window_flows += 1;
	__u64 elapsed = now - st->window_start;
	if (elapsed < cfg->flood_window) {
		/* Enter at once when the window's budget is already spent. */
		if (!st->mode &&
		    st->window_flows * cfg->hz > cfg->flood_enter_rate * cfg->flood_window)
			flood_set_mode(st, 1, now);
		return st->mode;
	}
	if (elapsed > FLOOD_MAX_ELAPSED)
		elapsed = FLOOD_MAX_ELAPSED;
	/* Close the window: rate = flows / elapsed seconds (elapsed >= flood_window >= 1). */
	__u64 rate = st->window_flows * cfg->hz / elapsed;
	st->last_rate = rate;
	if (!st->mode) {
		if (rate > cfg->flood_enter_rate)
			flood_set_mode(st, 1, now);
	} else if (rate < cfg->flood_exit_rate) {
		if (!st->calm_since)
			st->calm_since = st->window_start;
		if (now - st->calm_since >= cfg->flood_hold)
			flood_set_mode(st, 0, now);
	} else {
		st->calm_since = 0;
	}
	st->window_start = now;
	st->window_flows = 0;
	return st->mode;
}

#endif /* SHOAL_SYNGUARD_H */
