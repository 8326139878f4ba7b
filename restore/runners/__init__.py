"""The runners of the batch commands, in one room: find the inputs, process each, report, never
half-write.

    found = scan_inputs(args.paths, exclude=[out])          # inputs: UsageError -> exit 2
    report = run_job(job, found.items, ignored=found.ignored, skip_existing=args.skip_existing)
    return report.exit_code                                  # 0 all good, 1 some failed

Every file under an input folder ends in exactly one of four counts of the summary line: done,
skipped (its outputs exist, ``--skip-existing``), failed (one ``error:`` line with the reason)
or ignored (not an image: one ``ignored:`` line each). What a reader had to do to a file (only
the first frame of an animation, say) is one ``note:`` line for that file. A command's work is
a ``Job`` whose ``outputs(file, rel)`` names what one input writes under ``OUT / rel`` (written
atomically): how ``--skip-existing`` knows a file is finished and how a failed file's partial
outputs are removed; the temporaries a killed run left in OUT are swept at the start and end.

    inputs      scan_inputs, find_inputs, Inputs, UsageError: what the paths hold
    args        the options the batch commands share (imports no torch: ``--help`` is quick)
    report      BatchReport, describe_error, the ``ignored:``/``note:``/summary lines
    outputs     claiming each input's outputs, --skip-existing, removing the half-new, the sweep
    job         Job: a command's work as steps every runner shares
    sequential  run_batch: one input after another (``--no-pipeline``)
    pipeline    run_pipeline: reading ahead and writing behind on this machine (the default)
    ray         run_on_ray: Ray Data on a cluster (``--ray``)
    choose      run_job: the choice between the three
    command     run_command: a batch command's ``run(args)``, from the command line to exit status

Nothing is imported here, so ``restore.runners.args`` alone stays light.
"""
