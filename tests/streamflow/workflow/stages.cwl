#!/usr/bin/env cwl-runner
# Three steps moving a File with a secondary file, a Directory and their products from step
# to step (the StreamFlow plugin tests run it with each data manager and compare outputs).
cwlVersion: v1.2
class: Workflow
inputs:
  infile: {type: File, secondaryFiles: [.idx]}
  indir: Directory
outputs:
  indexed:
    type: File
    secondaryFiles: [.idx]
    outputSource: copy/out
  report:
    type: File
    outputSource: report/out
  extended:
    type: Directory
    outputSource: extend/out
steps:
  copy:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c]
      inputs:
        f: {type: File, secondaryFiles: [.idx]}
      arguments: ['cp "$0" copy.txt && cp "$0.idx" copy.txt.idx', $(inputs.f.path)]
      outputs:
        out: {type: File, secondaryFiles: [.idx], outputBinding: {glob: copy.txt}}
    in: {f: infile}
    out: [out]
  report:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c]
      inputs:
        f: {type: File, secondaryFiles: [.idx]}
        d: Directory
      arguments: ['cat "$0" "$0.idx" > report.txt && (cd "$1" && find . | sort && cat sub/*) >> report.txt', $(inputs.f.path), $(inputs.d.path)]
      outputs:
        out: {type: File, outputBinding: {glob: report.txt}}
    in: {f: copy/out, d: indir}
    out: [out]
  extend:
    run:
      class: CommandLineTool
      requirements:
        InitialWorkDirRequirement: {listing: [{entry: $(inputs.d), writable: true}]}
      baseCommand: [sh, -c]
      inputs:
        f: File
        d: Directory
      arguments: ['cp "$0" "$1/report-copy.txt"', $(inputs.f.path), $(inputs.d.basename)]
      outputs:
        out: {type: Directory, outputBinding: {glob: $(inputs.d.basename)}}
    in: {f: report/out, d: indir}
    out: [out]
