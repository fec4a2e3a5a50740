# ruff: noqa: RUF001  # full-width punctuation is correct in Chinese text
"""The wording of every finding, in English and Simplified Chinese (insights-core style:
rules return keys and values, the wording lives here).

Each entry gives a finding's title, an evidence template (``str.format`` fields filled
by the rule) and the recommendation. ``RESULT_EVIDENCE`` is the template for a finding
that repeats a check's own verdict; the check's summary is data and is shown as given.

>>> CATALOGUE["FS_FILLING_UP"].title.zh_cn
'文件系统即将写满'
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.reports.model import LocalText

__all__ = ["CATALOGUE", "RESULT_EVIDENCE", "Entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    title: LocalText
    evidence: LocalText
    recommendation: LocalText


def _e(title: tuple[str, str], evidence: tuple[str, str], recommendation: tuple[str, str]) -> Entry:
    return Entry(LocalText(*title), LocalText(*evidence), LocalText(*recommendation))


RESULT_EVIDENCE = LocalText("{check} reported {result}: {summary}", "检查项 {check} 报告 {result}：{summary}")

CATALOGUE: dict[str, Entry] = {
    # ------------------------------------------------------------------ host
    "MEMORY_PRESSURE": _e(
        ("Memory pressure", "内存压力"),
        (
            "{available} of memory available ({available_percent})",
            "可用内存 {available}（占 {available_percent}）",
        ),
        (
            "Find the processes that use the most memory (top consumers section); add memory or "
            "reduce the memory limits of the product's services so that at least 10% stays available.",
            "找出占用内存最多的进程（见资源占用排行）；扩充内存，或降低产品各服务的内存上限，"
            "使可用内存始终不低于 10%。",
        ),
    ),
    "MEMORY_GROWING": _e(
        ("Memory use keeps growing", "内存使用持续增长"),
        (
            "memory in use grows by {growth} per day ({used} of {total} used); full in about {days} days",
            "已用内存每天增长 {growth}（已用 {used}，共 {total}），约 {days} 天后耗尽",
        ),
        (
            "Check the product's processes for a memory leak (compare their resident memory over the "
            "period) and plan a controlled restart or a fix before memory runs out.",
            "排查产品进程是否存在内存泄漏（对比本周期内各进程常驻内存），在内存耗尽前安排受控重启或修复。",
        ),
    ),
    "SWAP_IN_ACTIVE": _e(
        ("Pages swapped in", "内存页换入频繁"),
        (
            "on average {rate} pages swapped in per second (peak {peak})",
            "平均每秒换入 {rate} 页（峰值 {peak}）",
        ),
        (
            "Processes are waiting for memory that was swapped out. Add memory or move workload "
            "away from this host; lower vm.swappiness only after memory is sufficient.",
            "进程正在等待已换出的内存页。请扩充内存或将部分负载迁出本主机；"
            "内存充足后再考虑调低 vm.swappiness。",
        ),
    ),
    "SWAP_NEARLY_FULL": _e(
        ("Swap space nearly used up", "交换空间即将用尽"),
        ("{used_percent} of swap space in use", "交换空间已使用 {used_percent}"),
        (
            "When swap is exhausted the OOM killer ends processes. Find what fills memory and add "
            "memory; enlarge swap only as a stopgap.",
            "交换空间耗尽后 OOM 机制会终止进程。请查明内存占用来源并扩充内存；扩大交换空间只能作为临时措施。",
        ),
    ),
    "OOM_KILLS": _e(
        ("Processes killed for lack of memory", "进程因内存不足被终止"),
        (
            "{count} processes killed by the OOM killer during the period",
            "本周期内 OOM 机制终止了 {count} 个进程",
        ),
        (
            "Read the kernel log for the killed processes, size memory for the peak load and set "
            "memory limits so that one service cannot starve the others.",
            "查看内核日志中被终止的进程，按峰值负载规划内存，"
            "并为各服务设置内存上限，避免单个服务挤占其他服务。",
        ),
    ),
    "ZOMBIE_PROCESSES": _e(
        ("Zombie processes accumulate", "僵尸进程堆积"),
        ("{count} zombie processes", "僵尸进程 {count} 个"),
        (
            "A parent process does not reap its children. Identify the parent (ps -o ppid) and "
            "restart or fix it; zombies hold process IDs until then.",
            "父进程未回收子进程。请找出父进程（ps -o ppid）并重启或修复；在此之前僵尸进程会一直占用进程号。",
        ),
    ),
    "FD_EXHAUSTION": _e(
        ("File descriptors near their limit", "文件描述符接近上限"),
        ("{used_percent} of the file-handle limit in use", "文件句柄已使用上限的 {used_percent}"),
        (
            "Check the process for leaked files or sockets; raise LimitNOFILE (or fs.file-max) "
            "only after ruling out a leak.",
            "检查相关进程是否泄漏文件或套接字；确认无泄漏后再调高 LimitNOFILE（或 fs.file-max）。",
        ),
    ),
    "PID_EXHAUSTION": _e(
        ("Process IDs running out", "进程号即将耗尽"),
        ("{used_percent} of kernel.pid_max in use", "已使用 kernel.pid_max 的 {used_percent}"),
        (
            "Find the process that creates threads or processes without bound; raise "
            "kernel.pid_max only as a stopgap.",
            "找出无限制创建线程或进程的程序；调高 kernel.pid_max 只能作为临时措施。",
        ),
    ),
    "CLOCK_UNSYNCHRONISED": _e(
        ("Clock not synchronised", "系统时钟未同步"),
        ("clock offset {offset}", "时钟偏差 {offset}"),
        (
            "Enable and check the time service (chronyd or systemd-timesyncd) and its NTP servers; "
            "wrong clocks break TLS, logs and cluster software.",
            "启用并检查时间同步服务（chronyd 或 systemd-timesyncd）及其 NTP 服务器；"
            "时钟错误会影响 TLS、日志和集群软件。",
        ),
    ),
    "CPU_SATURATED": _e(
        ("CPU saturated", "CPU 资源饱和"),
        ("CPU busy {busy} on average (peak {peak})", "CPU 平均繁忙 {busy}（峰值 {peak}）"),
        (
            "Check the top CPU consumers; add cores or spread the workload before response times suffer.",
            "检查 CPU 占用最高的进程；在响应时间受影响之前增加 CPU 核数或分散负载。",
        ),
    ),
    "CPU_STEAL": _e(
        ("CPU time taken by the hypervisor", "CPU 时间被虚拟化平台占用"),
        ("{steal} of CPU time stolen", "CPU 被占用时间 {steal}"),
        (
            "The virtualisation host is overcommitted. Ask the infrastructure team to reserve CPU "
            "for this VM or move it to a less loaded host.",
            "虚拟化宿主机资源超配。请基础设施团队为本虚拟机预留 CPU，或迁移到负载较低的宿主机。",
        ),
    ),
    "UNEXPECTED_REBOOT": _e(
        ("Unexpected reboot", "意外重启"),
        ("host restarted without a planned shutdown", "主机在无计划关机的情况下重启"),
        (
            "Read the previous boot's kernel log and the hardware event log to find the cause "
            "(power, kernel panic, watchdog) and record it in the service file.",
            "查看上次启动的内核日志和硬件事件日志，查明原因（电源、内核崩溃、看门狗），并记入用户服务档案。",
        ),
    ),
    "KERNEL_ERRORS": _e(
        ("Kernel reported errors", "内核报告错误"),
        ("{count} kernel error lines of kind {kind}", "内核错误日志 {count} 条，类型 {kind}"),
        (
            "Read the kernel log around these events; hardware, I/O and filesystem errors often "
            "precede failures and may need the hardware vendor.",
            "查看相关时段的内核日志；硬件、I/O 和文件系统错误往往是故障的前兆，必要时联系硬件厂商。",
        ),
    ),
    # ------------------------------------------------------------------ network
    "IFACE_DOWN": _e(
        ("Network interface down", "网络接口断开"),
        ("interface {item} is down or missing", "接口 {item} 断开或不存在"),
        (
            "Check cabling, the switch port and the interface configuration; a bonded link without "
            "its peer has no redundancy left.",
            "检查线缆、交换机端口和接口配置；绑定链路缺少一路时已失去冗余。",
        ),
    ),
    "IFACE_ERRORS": _e(
        ("Network interface errors", "网络接口错误"),
        (
            "interface {item}: up to {rate} errors or drops per second",
            "接口 {item}：每秒最多 {rate} 个错误或丢包",
        ),
        (
            "Check the cable, transceiver and switch port counters; persistent drops can also mean "
            "too small ring buffers (ethtool -g).",
            "检查线缆、光模块和交换机端口计数；持续丢包也可能是网卡环形缓冲区过小（ethtool -g）。",
        ),
    ),
    "TCP_RETRANSMISSIONS": _e(
        ("TCP retransmissions", "TCP 重传率偏高"),
        ("{percent} of TCP segments retransmitted on average", "平均 {percent} 的 TCP 报文被重传"),
        (
            "Look for packet loss on the path (interface errors, congested links, firewalls); "
            "retransmissions add latency to every request.",
            "排查链路丢包（接口错误、链路拥塞、防火墙）；重传会增加每个请求的延迟。",
        ),
    ),
    "CLOSE_WAIT_LEAK": _e(
        ("Connections left in CLOSE_WAIT", "连接滞留在 CLOSE_WAIT 状态"),
        ("{count} TCP connections in CLOSE_WAIT", "{count} 个 TCP 连接处于 CLOSE_WAIT"),
        (
            "The application does not close connections its peers have closed: a connection leak. "
            "Find the process holding them (ss -tp state close-wait) and report it to the product team.",
            "应用未关闭对端已关闭的连接，存在连接泄漏。"
            "请找出持有这些连接的进程（ss -tp state close-wait）并反馈给产品团队。",
        ),
    ),
    "CONNTRACK_NEARLY_FULL": _e(
        ("Connection-tracking table nearly full", "连接跟踪表即将写满"),
        ("conntrack table up to {percent} full", "连接跟踪表最高使用 {percent}"),
        (
            "When the table is full new connections are dropped. Raise nf_conntrack_max and shorten "
            "timeouts, or exempt high-volume traffic from tracking.",
            "连接跟踪表写满后新连接会被丢弃。请调高 nf_conntrack_max、缩短超时，或对大流量业务免于跟踪。",
        ),
    ),
    "DNS_PROBLEMS": _e(
        ("Name resolution problems", "域名解析异常"),
        ("resolving {item} failed or was slow", "解析 {item} 失败或缓慢"),
        (
            "Check /etc/resolv.conf and the DNS servers it names; slow or failing resolution delays "
            "every new connection.",
            "检查 /etc/resolv.conf 及其中的 DNS 服务器；解析缓慢或失败会拖慢每个新连接。",
        ),
    ),
    "LISTEN_QUEUE_OVERFLOW": _e(
        ("Connections dropped at a full listen queue", "监听队列溢出导致连接被丢弃"),
        ("up to {rate} connections dropped per second", "每秒最多丢弃 {rate} 个连接"),
        (
            "The service does not accept connections fast enough. Raise its backlog and "
            "net.core.somaxconn, and check whether the service is overloaded.",
            "服务接受连接的速度不足。请调大其 backlog 和 net.core.somaxconn，并检查服务是否过载。",
        ),
    ),
    "ENDPOINT_UNREACHABLE": _e(
        ("Network endpoint unreachable", "网络端点不可达"),
        ("connecting to {item} failed", "连接 {item} 失败"),
        (
            "Check routing and firewalls between this host and the endpoint, and whether the "
            "endpoint's service is running.",
            "检查本主机与该端点之间的路由和防火墙，以及端点服务是否在运行。",
        ),
    ),
    # ------------------------------------------------------------------ storage
    "FS_FILLING_UP": _e(
        ("Filesystem filling up", "文件系统即将写满"),
        (
            "{item}: full in about {days} days at the current growth of {growth} per day",
            "{item}：按当前每天 {growth} 的增长速度，约 {days} 天后写满",
        ),
        (
            "Clean up or archive old data (logs, backups, temporary files) and enlarge the "
            "filesystem before it is full; set up log rotation if it is missing.",
            "在写满之前清理或归档旧数据（日志、备份、临时文件）并扩容文件系统；如缺少日志轮转请配置。",
        ),
    ),
    "FS_NEARLY_FULL": _e(
        ("Filesystem nearly full", "文件系统空间不足"),
        ("{item}: {used_percent} used", "{item}：已使用 {used_percent}"),
        (
            "Free space now (old logs, core dumps, backups) and enlarge the filesystem; a full "
            "filesystem stops databases and applications.",
            "立即释放空间（旧日志、core 文件、备份）并扩容；文件系统写满会导致数据库和应用停止工作。",
        ),
    ),
    "INODE_EXHAUSTION": _e(
        ("Inodes running out", "inode 即将耗尽"),
        ("{item}: {used_percent} of inodes used", "{item}：inode 已使用 {used_percent}"),
        (
            "Many small files fill the inode table (session files, mail queues, caches). Remove "
            "them and fix their source; new files cannot be created once inodes are exhausted.",
            "大量小文件占满了 inode（会话文件、邮件队列、缓存）。"
            "请删除并解决其来源；inode 耗尽后将无法创建新文件。",
        ),
    ),
    "FS_READ_ONLY": _e(
        ("Filesystem remounted read-only", "文件系统被重新挂载为只读"),
        ("{item} is read-only after an error", "{item} 因错误变为只读"),
        (
            "The kernel remounted the filesystem after an I/O or filesystem error. Check the disk "
            "and run a filesystem check in a maintenance window.",
            "内核因 I/O 或文件系统错误将其重新挂载为只读。请检查磁盘，并在维护窗口内执行文件系统检查。",
        ),
    ),
    "DISK_SLOW": _e(
        ("Disk slow or saturated", "磁盘响应慢或饱和"),
        ("{item}: write latency {await_} on average", "{item}：平均写入延迟 {await_}"),
        (
            "Find the processes generating the I/O (iotop); move heavy jobs out of business hours "
            "or move the data to faster storage.",
            "找出产生 I/O 的进程（iotop）；将繁重任务移出业务时段，或将数据迁移到更快的存储。",
        ),
    ),
    # ------------------------------------------------------------------ platform
    "SYSTEMD_FAILED_UNITS": _e(
        ("Services failed or not running", "服务失败或未运行"),
        ("{count} failed or inactive systemd units", "{count} 个 systemd 单元失败或未运行"),
        (
            "Read the unit's journal (journalctl -u UNIT), fix the cause and restart it; reset "
            "units that are no longer needed (systemctl reset-failed).",
            "查看单元日志（journalctl -u 单元名），修复原因后重启；"
            "不再需要的单元请执行 systemctl reset-failed。",
        ),
    ),
    "UNIT_RESTARTING": _e(
        ("Service restarting repeatedly", "服务反复重启"),
        ("unit {item} restarted by systemd", "单元 {item} 被 systemd 自动重启"),
        (
            "A crashing service hides behind automatic restarts. Read its journal for the crash "
            "and report it to the product team.",
            "自动重启掩盖了服务崩溃。请查看其日志中的崩溃原因并反馈给产品团队。",
        ),
    ),
    "REBOOT_REQUIRED": _e(
        ("Reboot required after updates", "更新后需要重启"),
        ("installed updates wait for a reboot", "已安装的更新等待重启生效"),
        (
            "Schedule a reboot in the next maintenance window so that security fixes take effect.",
            "请在下一个维护窗口安排重启，使安全更新生效。",
        ),
    ),
    "KERNEL_TAINTED": _e(
        ("Kernel tainted", "内核处于受污染状态"),
        ("kernel taint flags set", "内核设置了污染标志"),
        (
            "The kernel recorded an oops, warning or hardware error, or runs unsupported modules. "
            "Read the kernel log and plan a reboot after fixing the cause.",
            "内核记录了 oops、告警或硬件错误，或加载了不受支持的模块。请查看内核日志，排除原因后计划重启。",
        ),
    ),
    "CERT_EXPIRING": _e(
        ("Certificate expiring", "证书即将过期"),
        ("{item}: certificate expires in {days} days", "{item}：证书将在 {days} 天后过期"),
        (
            "Renew the certificate and deploy it before it expires; clients refuse expired certificates.",
            "请在过期前续期并部署证书；客户端会拒绝已过期的证书。",
        ),
    ),
    "CERT_EXPIRED": _e(
        ("Certificate expired", "证书已过期"),
        ("{item}: certificate expired {days} days ago", "{item}：证书已于 {days} 天前过期"),
        (
            "Renew and deploy the certificate now; clients already refuse the connection.",
            "请立即续期并部署证书；客户端已在拒绝连接。",
        ),
    ),
    "SERVICE_UNREACHABLE": _e(
        ("Service not answering", "服务无响应"),
        ("{item} did not answer correctly", "{item} 未正确响应"),
        (
            "Check that the service runs and listens, and read its logs; dependent applications "
            "fail while it is down.",
            "检查服务是否运行并监听端口，查看其日志；该服务不可用时依赖它的应用也会失败。",
        ),
    ),
    "SERVICE_SLOW": _e(
        ("Service slow to answer", "服务响应缓慢"),
        ("{item} answered slowly", "{item} 响应缓慢"),
        (
            "Check the service's load and resources (CPU, disk, connections) and its own slow-query "
            "or slow-request logs.",
            "检查该服务的负载和资源（CPU、磁盘、连接数），以及其慢查询或慢请求日志。",
        ),
    ),
    "OS_END_OF_LIFE": _e(
        ("Operating system out of support", "操作系统已停止支持"),
        ("the operating system release is past its end of support", "操作系统版本已超过支持期限"),
        (
            "Plan an upgrade to a supported release; unsupported systems receive no security fixes.",
            "请计划升级到受支持的版本；停止支持的系统不再获得安全补丁。",
        ),
    ),
    "OS_VERSION_DRIFT": _e(
        ("Operating system versions differ", "操作系统版本不一致"),
        (
            "runs {component} {version}; most hosts run {common}",
            "运行 {component} {version}；多数主机为 {common}",
        ),
        (
            "Bring hosts of one role to the same operating system release and kernel, so that "
            "behaviour and fixes are the same everywhere.",
            "将同一角色的主机统一到相同的操作系统版本和内核，确保行为和补丁一致。",
        ),
    ),
    # ------------------------------------------------------------------ application
    "HTTP_FAILING": _e(
        ("Web endpoint failing", "Web 端点访问失败"),
        ("{item} failed", "{item} 访问失败"),
        (
            "Check the application and the web server's error log; users see errors while the "
            "endpoint fails.",
            "检查应用及 Web 服务器错误日志；端点失败期间用户会看到错误。",
        ),
    ),
    "HTTP_SLOW": _e(
        ("Web endpoint slow", "Web 端点响应缓慢"),
        ("{item}: {latency} on average (slowest {peak})", "{item}：平均 {latency}（最慢 {peak}）"),
        (
            "Profile the slow requests (application and database logs) and check the host's "
            "resources during the slow periods.",
            "分析慢请求（应用和数据库日志），并检查慢响应时段的主机资源。",
        ),
    ),
    "PROCESS_MISSING": _e(
        ("Product process not running", "产品进程未运行"),
        ("process group {item} is not running", "进程组 {item} 未运行"),
        (
            "Start the missing process and find out why it stopped (its logs, OOM kills, crashes).",
            "启动缺失的进程，并查明其停止原因（日志、OOM、崩溃）。",
        ),
    ),
    "PROCESS_RESOURCES_HIGH": _e(
        ("Product process uses too many resources", "产品进程资源占用过高"),
        ("process group {item} over its limits", "进程组 {item} 超出限额"),
        (
            "Compare with the product's sizing guide; report a leak or runaway process to the product team.",
            "对照产品的容量规划指南；如存在泄漏或失控进程请反馈给产品团队。",
        ),
    ),
    "LOG_ERROR_RATE": _e(
        ("Errors logged", "日志错误频繁"),
        (
            "{item}: pattern {pattern} matched {rate} lines per minute on average",
            "{item}：模式 {pattern} 平均每分钟匹配 {rate} 行",
        ),
        (
            "Read the matching log lines to find the failing component and fix or report it.",
            "查看匹配的日志行，找出出错的组件并修复或反馈。",
        ),
    ),
    "VERSION_DRIFT": _e(
        ("Product versions differ between hosts", "各主机产品版本不一致"),
        (
            "runs {component} {version}; most hosts run {common}",
            "运行 {component} {version}；多数主机为 {common}",
        ),
        (
            "Upgrade the hosts left behind, or record why they stay on an older version (产品升级记录).",
            "升级落后的主机，或在产品升级记录中说明其保留旧版本的原因。",
        ),
    ),
    "PRODUCT_VERSION_UNKNOWN": _e(
        ("Product version unknown", "无法确定产品版本"),
        ("the version of {item} could not be read", "无法读取 {item} 的版本"),
        (
            "Check the product's installation and the agent's version settings; an unknown "
            "version cannot be tracked in the upgrade records.",
            "检查产品安装及代理的版本配置；未知版本无法记入产品升级记录。",
        ),
    ),
    "AGENT_GAPS": _e(
        ("Monitoring data lost", "监控数据缺失"),
        ("{count} results lost by the agent during the period", "本周期内代理丢失 {count} 条结果"),
        (
            "Check the agent's connection to the collector and the size of its spool; lost data "
            "leaves gaps in trends and may hide incidents.",
            "检查代理与采集端的连接及其缓存容量；数据丢失会使趋势出现空缺并可能掩盖故障。",
        ),
    ),
    "AGENT_UNHEALTHY": _e(
        ("Monitoring agent unhealthy", "监控代理运行异常"),
        ("the agent reported {result}", "代理报告 {result}"),
        (
            "Check the agent's own resource use and hung checks (diag-agent status); restart it "
            "and report the problem to the remote-diag team.",
            "检查代理自身的资源占用和挂起的检查（diag-agent status）；"
            "重启代理并将问题反馈给 remote-diag 团队。",
        ),
    ),
    "HOST_NOT_ANSWERING": _e(
        ("Host did not answer the inspection", "主机未响应巡检"),
        (
            "no answer before the deadline; last seen {last_seen}",
            "截止时间前未响应；最后在线时间 {last_seen}",
        ),
        (
            "Check that the host is running and its agent can reach the collector; the host is "
            "not covered by this report.",
            "检查主机是否运行，以及其代理能否连接采集端；本报告未覆盖该主机。",
        ),
    ),
}
