package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Durability is what a Redis server promises about the sales it has
// acknowledged, as its configuration and its replication say, with the
// sale's own wait_replicas.
type Durability struct {
	AppendOnly       string // "yes", "no" or "" if unknown
	AppendFsync      string // "always", "everysec", "no" or "" if unknown
	NoFsyncOnRewrite string // no-appendfsync-on-rewrite: "yes", "no" or "" if unknown
	Save             string // the RDB snapshot schedule, "" for none or unknown
	Known            bool   // CONFIG GET answered
	Note             string // why the setting is unknown, if it is

	Role          string // "master", "slave" or "" if unknown
	Primary       string // a replica's primary, HOST:PORT
	Replicas      int    // replicas online
	WaitReplicas  int    // replicas each sale waits for (the URL's wait_replicas)
	Policy        string // maxmemory-policy, "" if unknown
	AllowEviction bool   // the URL's allow_eviction=yes
}

// Durable reports whether the server keeps an acknowledged sale through a
// crash of its process or its machine: appendonly yes, appendfsync always,
// and no-appendfsync-on-rewrite no (with yes, the server skips the fsync
// while it rewrites its AOF or saves a snapshot).
func (d Durability) Durable() bool {
	return d.AppendOnly == "yes" && d.AppendFsync == "always" && d.NoFsyncOnRewrite == "no"
}

// CanLose reports whether an acknowledged sale can be lost: the server is
// not Durable, or it is a replica, or replicas are online that a failover
// could promote without the last sales (the sale does not wait for them),
// or its maxmemory-policy may evict any key.
func (d Durability) CanLose() bool {
	return !d.Durable() || d.Role != "master" || (d.Replicas > 0 && d.WaitReplicas == 0) || strings.HasPrefix(d.Policy, "allkeys-")
}

// String says in one line what the server promises and why.
func (d Durability) String() string {
	var parts []string
	switch d.Role {
	case "master":
	case "slave":
		parts = append(parts, "a replica of "+d.Primary+": buys and other writes are refused here (they go to the primary), and what it shows may lag behind")
	default:
		parts = append(parts, "role unknown")
	}
	parts = append(parts, d.persistence())
	switch {
	case d.Replicas > 0 && d.WaitReplicas == 0:
		parts = append(parts, fmt.Sprintf("%d %s online, replicated asynchronously: a failover to one can lose the last acknowledged sales (%s=N in the URL makes each buy wait for N of them)", d.Replicas, replicas(d.Replicas), ParamWaitReplicas))
	case d.WaitReplicas > 0 && d.Replicas >= d.WaitReplicas:
		parts = append(parts, fmt.Sprintf("each sale is acknowledged only once %d of the %d %s online %s it (WAIT): a failover to one that has it keeps it", d.WaitReplicas, d.Replicas, replicas(d.Replicas), map[bool]string{true: "has", false: "have"}[d.WaitReplicas == 1]))
	case d.WaitReplicas > 0:
		parts = append(parts, fmt.Sprintf("only %d %s online of the %d each sale waits for (%s): buys are refused until enough are", d.Replicas, replicas(d.Replicas), d.WaitReplicas, ParamWaitReplicas))
	}
	if strings.HasPrefix(d.Policy, "allkeys-") {
		if d.AllowEviction {
			parts = append(parts, "maxmemory-policy "+d.Policy+" may evict the sale's keys (allowed by "+ParamAllowEviction+"=yes): a retry may then buy twice, and the sale may vanish")
		} else {
			parts = append(parts, "maxmemory-policy "+d.Policy+" may evict the sale's keys: buys are refused")
		}
	}
	return strings.Join(parts, "; ")
}

// persistence describes the server's own persistence.
func (d Durability) persistence() string {
	rewrite := ""
	switch d.NoFsyncOnRewrite {
	case "yes":
		rewrite = ", but no-appendfsync-on-rewrite yes: while the server rewrites its AOF or saves a snapshot it skips the fsync, and a crash of its machine then can lose acknowledged sales"
	case "no":
	default:
		rewrite = ", but no-appendfsync-on-rewrite is unknown: if yes, a crash of its machine during a rewrite can lose acknowledged sales"
	}
	switch {
	case d.AppendOnly == "yes" && d.AppendFsync == "always":
		return "appendonly yes, appendfsync always: every acknowledged sale is on disk (fsync) before the reply; it survives a crash of the server or its machine" + rewrite
	case d.AppendOnly == "yes" && d.AppendFsync == "everysec":
		return "appendonly yes, appendfsync everysec: an acknowledged sale survives a crash of the server process, but a crash of its machine can lose the last second or two of sales"
	case d.AppendOnly == "yes" && d.AppendFsync == "no":
		return "appendonly yes, appendfsync no: the kernel decides when sales reach the disk; a crash of the machine can lose tens of seconds of acknowledged sales"
	case d.AppendOnly == "yes":
		return "appendonly yes, appendfsync unknown (" + d.Note + "): a crash of the machine may lose acknowledged sales"
	case d.AppendOnly == "no" && !d.Known:
		return "appendonly no (" + d.Note + "): a restart loses every sale since the last snapshot, if snapshots are on at all"
	case d.AppendOnly == "no" && d.Save != "":
		return "appendonly no, snapshots (save " + d.Save + "): a restart loses every sale since the last snapshot"
	case d.AppendOnly == "no":
		return "no persistence (appendonly no, no snapshots): a restart of the server loses the whole sale"
	}
	return "persistence unknown (" + d.Note + "): assume a restart can lose acknowledged sales"
}

// Durability asks the server for every setting that decides what an
// acknowledged sale survives: its persistence (CONFIG GET, falling back to
// INFO persistence where CONFIG is disabled or renamed), its role and
// online replicas (INFO replication), and its maxmemory-policy.
func (r *Store) Durability(ctx context.Context) (Durability, error) {
	d := Durability{WaitReplicas: r.waitReplicas, AllowEviction: r.allowEviction}
	var cfg [5]*goredis.MapStringStringCmd
	var repl, mem *goredis.StringCmd
	err := r.call(ctx, func(ctx context.Context) error {
		_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range []string{"appendonly", "appendfsync", "no-appendfsync-on-rewrite", "save", "maxmemory-policy"} {
				cfg[i] = p.ConfigGet(ctx, k)
			}
			repl = p.Info(ctx, "replication")
			mem = p.Info(ctx, "memory")
			return nil
		})
		return err
	})
	var rerr goredis.Error
	if err != nil && !errors.As(err, &rerr) {
		return d, r.fail("config get", err)
	}
	info := func(cmd *goredis.StringCmd, key string) string {
		for _, line := range strings.Split(cmd.Val(), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
				return v
			}
		}
		return ""
	}
	d.Role = info(repl, "role")
	if d.Role == "slave" {
		d.Primary = info(repl, "master_host") + ":" + info(repl, "master_port")
	}
	for _, line := range strings.Split(repl.Val(), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
			d.Replicas++
		}
	}
	d.Policy = info(mem, "maxmemory_policy")
	if m, err := cfg[0].Result(); err == nil {
		d.Known = true
		d.AppendOnly = m["appendonly"]
		d.AppendFsync = cfg[1].Val()["appendfsync"]
		d.NoFsyncOnRewrite = cfg[2].Val()["no-appendfsync-on-rewrite"]
		d.Save = cfg[3].Val()["save"]
		if p := cfg[4].Val()["maxmemory-policy"]; p != "" {
			d.Policy = p
		}
		return d, nil
	} else if errors.As(err, &rerr) {
		d.Note = "CONFIG GET refused: " + rerr.Error()
	}
	var pers string
	err = r.call(ctx, func(ctx context.Context) error {
		var err error
		pers, err = r.client.Info(ctx, "persistence").Result()
		return err
	})
	if err != nil {
		return d, nil // nothing more to learn; d says unknown
	}
	for _, line := range strings.Split(pers, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == "aof_enabled" {
			d.AppendOnly = map[string]string{"1": "yes", "0": "no"}[v]
		}
	}
	return d, nil
}
