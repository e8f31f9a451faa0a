namespace MakinaStates.Image.Sdk.Benchmarks;

/// <summary>The reference for a rebuild: the same engine work as the SDK's stages 2 and 3, as docker CLI calls.</summary>
internal static class CliReference
{
    /// <summary>
    /// Create with systemd, copy the tree, start, wait for boot, exec stage2/stage3 (and the snapshot and ACL save the
    /// SDK also runs), clean /docker, stop, commit, remove. Prints `cli-steps: name 0.12 s, …` on stderr.
    /// Arguments: stage1 image, sample folder (any copy of the sample: its whole tree is copied, the 1 GiB file of the
    /// (f) copy too), effective bootstrap_scripts folder, candidate tag.
    /// </summary>
    public const string RebuildScript = """
        #!/bin/bash
        set -euo pipefail
        image="$1"; sample="$2"; scripts="$3"; candidate="$4"
        steps=(); last=$(date +%s%N)
        step() { local now ms; now=$(date +%s%N); ms=$(( (now - last) / 1000000 )); steps+=("$1 $(printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10))) s"); last=$now; }
        cid=$(docker create --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro -e container=docker \
              --stop-signal SIGRTMIN+3 "$image" /sbin/init)
        trap 'docker rm -f "$cid" >/dev/null' EXIT
        step create
        tar -C "$sample/injected_volumes" --exclude=./bootstrap_scripts -cf - . | docker cp - "$cid:/"
        tar -C "$sample/image_rootfs" --exclude=./bootstrap_scripts -cf - . | docker cp - "$cid:/"
        tar -C "$sample/site" --transform 's,^\.,srv/projects/hello/www,' -cf - . | docker cp - "$cid:/"
        tar -C "$scripts" --transform 's,^\.,docker/injected_volumes/bootstrap_scripts,' -cf - . | docker cp - "$cid:/"
        step inject
        docker start "$cid" >/dev/null
        step start
        until [[ "$(docker exec "$cid" systemctl is-system-running --wait 2>/dev/null)" =~ running|degraded ]]; do sleep 0.5; done
        step boot
        for s in stage2.sh stage3.sh snapshot.sh save-acls.sh; do
          docker exec "$cid" bash "/docker/injected_volumes/bootstrap_scripts/$s" >/dev/null
          step "$s"
        done
        docker exec "$cid" rm -rf /docker
        step "clean /docker"
        docker stop "$cid" >/dev/null
        step stop
        docker commit --change 'CMD ["/sbin/init"]' "$cid" "$candidate" >/dev/null
        step commit
        docker rm -f "$cid" >/dev/null
        trap - EXIT
        step "remove container"
        (IFS=,; echo "cli-steps: ${steps[*]}" | sed 's/,/, /g' >&2)
        """;
}
