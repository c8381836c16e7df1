# Downloads: verified (size, sha256 or the trust-on-first-use lock file),
# resumable, then safely extracted. Runs on the submit host under SLURM.


wildcard_constraints:
    source="|".join(config["sources"]) or "(?!x)x",


rule download:
    output:
        protected("resources/downloads/{source}"),
    log:
        "results/logs/download/{source}.log",
    params:
        url=lambda w: shlex.quote(config["sources"][w.source]["url"] or ""),
        checks=lambda w: " ".join(
            f"--{key} {config['sources'][w.source][key]}"
            for key in ("sha256", "size")
            if config["sources"][w.source].get(key)
        ),
    localrule: True
    retries: 1
    resources:
        net=1,
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg download {params.url} --out {output} {params.checks}"
        " --lock resources/checksums.lock --name {wildcards.source} > {log} 2>&1"


rule unzip:
    input:
        "resources/downloads/{source}",
    output:
        "resources/extracted/{source}.manifest.json",
    log:
        "results/logs/unzip/{source}.log",
    params:
        folder=lambda w: f"resources/extracted/{w.source}",
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg unzip {input} --out {params.folder} --manifest {output} > {log} 2>&1"
