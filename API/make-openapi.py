#!/usr/bin/env python3
# Writes API/openapi.json from the description below (hand-kept: Tests/SDDaemonTests/OpenAPITests.swift
# checks the running server against the document). Run it after changing the API.
import json, os
S=lambda: {"type":"string"}
I=lambda: {"type":"integer"}
N=lambda: {"type":"number"}
B=lambda: {"type":"boolean"}
def A(x): return {"type":"array","items":x}
def R(n): return {"$ref":"#/components/schemas/"+n}
def O(req, opt=None, desc=None, extra=False):
    props=dict(req); props.update(opt or {})
    o={"type":"object","required":sorted(req.keys()),"properties":props,"additionalProperties":extra}
    if desc: o["description"]=desc
    return o
schemas={
 "Error": O({"error":S()}, desc="Every 4xx and 5xx answer: what went wrong, in words."),
 "DaemonInfo": O({"pid":I(),"libraryID":S(),"libraryName":S(),"libraryPath":S(),"startedAt":I(),"apiVersion":I()}),
 "IndexStatus": O({k:I() for k in ["entries","files","folders","bytes","contents","duplicateGroups","duplicateFiles","wastedBytes","pendingContent","pendingAnalysis","errors","runningJobs"]} | {
     "kinds":{"type":"object","additionalProperties":O({"files":I(),"bytes":I()})},
     "locations":A(O({"name":S(),"path":S(),"state":S(),"entries":I()},{"stateReason":S()}))}),
 "ListItem": O({"name":S(),"display":S(),"type":S(),"size":I()},{"category":S(),"modified":S(),"contentID":S(),"error":S()}),
 "Location": O({"id":I(),"uuid":S(),"name":S(),"indexContent":B(),"state":S(),"scanEpoch":I()},
     {"path":S(),"pathBytes":{"type":"string","description":"base64, when the path is not UTF-8"},"volumeID":I(),"volumeIdentity":S(),"stateReason":S(),"rootEntryID":I(),"lastIndexedAt":I()}),
 "SearchHit": O({"id":I(),"name":S(),"path":S(),"kind":S(),"size":I(),"tier":I(),"score":N()},{"modified":{"type":"string","format":"date-time"},"contentID":S()}),
 "SearchAnswer": O({"hits":A(R("SearchHit")),"notes":A(S()),"seconds":N()},{"nextCursor":S()}),
 "JobRecord": O({"id":S(),"kind":S(),"state":S(),"progressDone":I(),"createdAt":I(),"updatedAt":I()},
     {"target":S(),"input":S(),"checkpoint":S(),"progressTotal":I(),"error":S(),"requested":S(),"startedAt":I(),"finishedAt":I()}),
 "IndexReport": O({"location":S(),"epoch":I(),"resumed":B(),"hashed":I(),"hashErrors":I(),"analysisQueued":I(),"seconds":N(),
     "counts":O({k:I() for k in ["listed","inserted","updated","unchanged","unreadableFolders"]}),
     "removals":O({"removed":I(),"moved":I()}),
     "phaseSeconds":{"type":"object","additionalProperties":N()}},{"offline":S()}),
 "JobAnswer": O({"job":R("JobRecord"),"running":B()},{"report":R("IndexReport"),"targetName":S()}),
 "IndexRequest": O({"locations":A(S())},{"noContent":B(),"allowMassDelete":B(),"noSearchIndex":B()}),
 "IndexStart": O({"location":S()},{"job":S(),"report":R("IndexReport")}),
 "ActionRequest": O({"action":{"type":"string","enum":["copy","move","delete","rename","mkdir","undo","restore","empty-trash","dedup"]},"paths":A(S())},
     {"destination":S(),"newName":S(),"onConflict":{"type":"string","enum":["fail","skip","overwrite","rename"]},"verifyFull":B(),"permanent":B(),
      "forceLastCopy":B(),"job":S(),"all":B(),"mode":{"type":"string","enum":["hardlink","reflink","trash"]},
      "keep":{"type":"string","enum":["oldest","newest","shortest"]},"acrossDisks":B(),"minSize":S(),"kind":S(),"location":S()},
     desc="One file action. Paths are absolute paths or SdPaths of this device; restore and empty-trash name trash items by id."),
 "FileOperation": O({"kind":S(),"source":S(),"target":S()},{"size":I(),"files":I(),"conflict":S(),"skip":B(),"removeSource":B(),"hash":S(),"mode":I(),"mtime":I()}),
 "Problem": O({"path":S(),"reason":S()}),
 "LastCopy": O({"path":S(),"size":I(),"remaining":I(),"required":I()},{"contentID":S()}),
 "ActionPreview": O({"action":S(),"operations":A(R("FileOperation")),"files":I(),"folders":I(),"symlinks":I(),"bytes":I(),"bytesToWrite":I(),
     "skipped":I(),"alreadyThere":I(),"alreadyThereBytes":I(),"conflicts":A(R("FileOperation")),"problems":A(R("Problem")),
     "lastCopies":A(R("LastCopy")),"forceLastCopy":B(),"estimatedSeconds":N(),"verifyFull":B()},
     {"destination":S(),"bytesFreed":I(),"freeBytes":I(),"trashItems":A(S()),"undoes":S()}),
 "PreviewAnswer": O({"id":S(),"preview":R("ActionPreview"),"notes":A(S())}),
 "LocationRequest": O({"path":S()},{"name":S(),"noContent":B()}),
 "RemovedLocation": O({"location":S(),"removedEntries":I()}),
 "Tag": O({"id":S(),"name":S(),"uses":I()},{"color":S()}),
 "TagEdit": O({"action":{"type":"string","enum":["create","rename","delete"]},"name":S()},{"newName":S(),"color":S()}),
 "TagRequest": O({"tag":S(),"paths":A(S()),"present":B()}),
 "MetaRequest": O({"paths":A(S())},{"rating":I(),"clearRating":B(),"favorite":B(),"note":S()}),
 "MetaView": O({"favorite":B(),"tags":A(S())},{"rating":I(),"note":S()}),
 "MessageAnswer": O({"message":S()}),
 "ChangeAnswer": O({"changed":I(),"notIndexed":A(S())}),
 "DuplicateGroup": O({"contentID":S(),"size":I(),"members":A(O({"entryID":I(),"path":S(),"location":S(),"locationID":I(),"size":I(),"mtimeNanoseconds":I(),"device":I(),"inode":I()}))}),
 "DupesReport": O({"groups":A(R("DuplicateGroup")),"files":I(),"wastedBytes":I(),"verified":B(),
     "splits":A(O({"contentID":S(),"parts":A(A(S()))})),"skipped":A(R("Problem"))}),
 "Share": O({"name":S(),"contents":I(),"bytes":I()}),
 "RedundancyReport": O({"minCopies":I(),"contents":I(),"bytesAtRisk":I(),"pendingFiles":I(),"byKind":A(R("Share")),"byLocation":A(R("Share"))}),
 "LossReport": O({"lost":S(),"report":R("RedundancyReport"),"libraryOnIt":B(),"library":S()}),
 "CopyCandidate": O({"path":S(),"device":S(),"local":B(),"reachable":B(),"speed":{"type":"string","enum":["memory","local","removable","network","unknown"]}},{"roundTripMilliseconds":N(),"why":S()}),
 "EntryInfo": O({"id":I(),"uuid":S(),"name":A(I()),"type":I(),"size":I()},{"category":S(),"mime":S(),"mtimeNanoseconds":I(),"contentID":S(),"aggregateSize":I(),"aggregateFiles":I(),"symlinkTarget":A(I()),"error":S()},
     desc="An entry as stored: its name as bytes (names need not be UTF-8)."),
 "ResolveAnswer": O({},{"content":O({"contentID":S(),"copies":A(R("CopyCandidate"))},{"chosen":S()}),
     "physical":O({"path":S(),"exists":B(),"indexed":B(),"sdPath":S()},{"entry":R("EntryInfo")})}),
 "AuditRecord": O({"id":S(),"at":I(),"actor":S(),"action":S(),"outcome":S()},{"target":S(),"details":S(),"jobID":S()}),
 "TrashItem": O({"id":S(),"originalPath":S(),"trashPath":S(),"kind":S(),"files":I(),"bytes":I(),"deletedAt":I(),"state":S()},
     {"jobID":S(),"manifest":{"type":"object","additionalProperties":S()}}),
 "PeerView": O({"id":S(),"name":S(),"fingerprint":S(),"addresses":A(S()),"pairedAt":{"type":"string","format":"date-time"}}, desc="A paired device: its key's fingerprint, where it was reached."),
 "PeersAnswer": O({"device":S(),"name":S(),"fingerprint":S(),"peers":A(R("PeerView"))},{"listening":I()}),
 "PairRequest": O({},{"host":S(),"minutes":I()}),
 "PairState": O({"state":{"type":"string","enum":["none","waiting","paired","failed"]}},{"code":S(),"peer":R("PeerView"),"reason":S()}),
 "JoinRequest": O({"code":S()}),
 "AddressRequest": O({"address":S()}),
 "DeviceRequest": O({"device":S()}),
 "PeerSyncStatus": O({"device":S(),"name":S(),"connected":B(),"caughtUp":B(),"applied":I(),"ownedSeq":I(),"sharedSeq":I()},
     {"address":S(),"lastSyncAt":{"type":"string","format":"date-time"},"lastError":S(),"rttMilliseconds":N()}),
 "SyncConflict": O({"id":I(),"record":S(),"key":S(),"field":S(),"hlc":S(),"winnerHLC":S(),"foundAt":{"type":"string","format":"date-time"}},{"value":S(),"winnerValue":S()},
     desc="A value that lost to a concurrent edit on another device (kept, restorable with sd sync conflicts --restore)."),
}
def ok(schema, code="200", desc="OK"):
    return {code:{"description":desc,"content":{"application/json":{"schema":schema}}}}
ERR={"description":"the request was wrong (says how)","content":{"application/json":{"schema":R("Error")}}}
def errs(*codes):
    return {str(c):ERR for c in codes}
def q(name, desc, typ="string", required=False):
    return {"name":name,"in":"query","required":required,"description":desc,"schema":{"type":typ}}
PATHQ=q("path","an absolute path (no '..') or an SdPath",required=True)
IDP={"name":"id","in":"path","required":True,"description":"a job id, or its first characters","schema":{"type":"string"}}
def body(n): return {"required":True,"content":{"application/json":{"schema":R(n)}}}
paths={
 "/v1/info":{"get":{"operationId":"info","summary":"Who answers: pid, library, start time, API version.","responses":ok(R("DaemonInfo"))}},
 "/v1/status":{"get":{"operationId":"status","summary":"What the library holds (sd status).","responses":ok(R("IndexStatus"))}},
 "/v1/ls":{"get":{"operationId":"ls","summary":"A folder's children from the index (sd ls).","parameters":[PATHQ],"responses":ok(A(R("ListItem")))|errs(400,404)}},
 "/v1/locations":{"get":{"operationId":"locations","summary":"The locations (sd location list).","responses":ok(A(R("Location")))},
     "post":{"operationId":"addLocation","summary":"Add a folder to index (then POST /v1/index).","requestBody":body("LocationRequest"),"responses":ok(R("Location"))|errs(400,413)}},
 "/v1/locations/{key}/remove":{"post":{"operationId":"removeLocation","summary":"Remove a location and its index entries (files are never touched).",
     "parameters":[{"name":"key","in":"path","required":True,"description":"the location's number, name, uuid or path (escaped)","schema":{"type":"string"}}],
     "responses":ok(R("RemovedLocation"))|errs(404)}},
 "/v1/search":{"get":{"operationId":"search","summary":"Search, paged (sd search).","parameters":[q("q","the query (sd search syntax)",required=True),
     {"name":"sort","in":"query","schema":{"type":"string","enum":["relevance","name","size","modified"]}},q("limit","hits per page (default 50)","integer"),q("cursor","nextCursor of the previous page")],
     "responses":ok(R("SearchAnswer"))|errs(400)}},
 "/v1/events":{"get":{"operationId":"events","summary":"Server-sent events: first the comment `: subscribed` (from then on no event is missed), then one `data: {json}` line per job progress, index change or action outcome, until the daemon stops. A slow reader loses the oldest events (1,024 are kept per reader).",
     "responses":{"200":{"description":"an event stream","content":{"text/event-stream":{"schema":{"type":"string"}}}}}}},
 "/v1/jobs":{"get":{"operationId":"jobs","summary":"Unfinished jobs (all with all=true), newest first.","parameters":[q("all","finished jobs too","boolean")],"responses":ok(A(R("JobRecord")))}},
 "/v1/jobs/{id}":{"get":{"operationId":"job","summary":"One job, whether it runs now, and an index job's report.","parameters":[IDP],"responses":ok(R("JobAnswer"))|errs(400,404)}},
 "/v1/jobs/{id}/pause":{"post":{"operationId":"pauseJob","summary":"Pause a job (it stops after its current step).","parameters":[IDP],"responses":ok(R("JobRecord"))|errs(400,404,409)}},
 "/v1/jobs/{id}/cancel":{"post":{"operationId":"cancelJob","summary":"Cancel a job (it stops after its current step).","parameters":[IDP],"responses":ok(R("JobRecord"))|errs(400,404,409)}},
 "/v1/jobs/{id}/resume":{"post":{"operationId":"resumeJob","summary":"Run a paused or interrupted job in the daemon; answers at once.","parameters":[IDP],"responses":ok(R("JobAnswer"),"202","started")|errs(400,404,409)}},
 "/v1/index":{"post":{"operationId":"index","summary":"Index locations (all when none): an index job each, run by the daemon (which stops watching them meanwhile). Offline locations get a report at once.",
     "requestBody":body("IndexRequest"),"responses":ok(A(R("IndexStart")),"202","started")|errs(400,413)}},
 "/v1/actions/preview":{"post":{"operationId":"previewAction","summary":"Preview an action: simulated on the index and a cheap look at the disk; nothing is touched. The id commits it (once, within 15 minutes).",
     "requestBody":body("ActionRequest"),"responses":ok(R("PreviewAnswer"))|errs(400,413)}},
 "/v1/actions/{id}/commit":{"post":{"operationId":"commitAction","summary":"Commit a preview: a durable job runs exactly its operations, in the daemon. 409 when the preview showed it cannot be done (audited as refused).",
     "parameters":[{"name":"id","in":"path","required":True,"description":"the preview's id","schema":{"type":"string"}}],
     "responses":ok(R("JobRecord"),"202","committed")|errs(404,409)}},
 "/v1/tags":{"get":{"operationId":"tags","summary":"The tags and how many items carry each.","responses":ok(A(R("Tag")))}},
 "/v1/tags/edit":{"post":{"operationId":"editTag","summary":"Create, rename or delete a tag (audited).","requestBody":body("TagEdit"),"responses":ok(R("MessageAnswer"))|errs(400,413)}},
 "/v1/tags/apply":{"post":{"operationId":"applyTag","summary":"Put a tag on files and folders, or take it off (audited).","requestBody":body("TagRequest"),"responses":ok(R("ChangeAnswer"))|errs(400,413)}},
 "/v1/tags/of":{"get":{"operationId":"tagsOf","summary":"The tags on a file or folder.","parameters":[PATHQ],"responses":ok(A(S()))|errs(400,404)}},
 "/v1/meta":{"get":{"operationId":"meta","summary":"A file's rating, favorite mark, note and tags.","parameters":[PATHQ],"responses":ok(R("MetaView"))|errs(400,404)},
             "post":{"operationId":"setMeta","summary":"Change ratings, favorite marks, notes.","requestBody":body("MetaRequest"),"responses":ok(R("ChangeAnswer"))|errs(400,413)}},
 "/v1/dupes":{"get":{"operationId":"dupes","summary":"Duplicate groups by content id; verify=true confirms them by full BLAKE3.","parameters":[q("minSize","e.g. 1MB"),q("kind","image, video, document, ..."),q("location","name, path or id"),q("verify","confirm by full hash","boolean")],
     "responses":ok(R("DupesReport"))|errs(400)}},
 "/v1/redundancy":{"get":{"operationId":"redundancy","summary":"Contents with fewer copies than minCopies; with ifLost, what a lost disk (a path on it) or device would take with it.",
     "parameters":[q("minCopies","1 to 100 (default 2, or the library's min-copies if higher)","integer"),q("kind","only this kind"),q("ifLost","an absolute path on a disk, or a device id")],
     "responses":{"200":{"description":"a RedundancyReport, or a LossReport with ifLost","content":{"application/json":{"schema":{"oneOf":[R("RedundancyReport"),R("LossReport")]}}}}}|errs(400)}},
 "/v1/resolve":{"get":{"operationId":"resolve","summary":"A content path's copies, ranked, and the one chosen; or a physical path's entry.","parameters":[PATHQ],"responses":ok(R("ResolveAnswer"))|errs(400)}},
 "/v1/log":{"get":{"operationId":"auditLog","summary":"The audit log, newest first.","parameters":[q("limit","at most this many (default 50)","integer")],"responses":ok(A(R("AuditRecord")))|errs(400)}},
 "/v1/trash":{"get":{"operationId":"trash","summary":"What is in the trash, newest first.","responses":ok(A(R("TrashItem")))}},
 "/v1/peers":{"get":{"operationId":"peers","summary":"This device (key fingerprint, peer port) and the devices paired with it (sd peer list).","responses":ok(R("PeersAnswer"))|errs(409)}},
 "/v1/peers/add":{"post":{"operationId":"addPeer","summary":"Connect to HOST:PORT, which must be a paired device, and note the address (sd peer add).","requestBody":body("AddressRequest"),"responses":ok(R("PeerView"))|errs(400,409,413,502)}},
 "/v1/pair":{"get":{"operationId":"pairState","summary":"What became of the last pairing code.","responses":ok(R("PairState"))|errs(409)},
     "post":{"operationId":"pair","summary":"Open a pairing code (works once, for minutes): the device that joins with it and proves it is paired (sd pair).","requestBody":body("PairRequest"),"responses":ok(R("PairState"))|errs(400,409,413)}},
 "/v1/pair/join":{"post":{"operationId":"joinPairing","summary":"Pair with the device that shows this code (sd pair join).","requestBody":body("JoinRequest"),"responses":ok(R("PeerView"))|errs(400,409,413,502)}},
 "/v1/sync":{"get":{"operationId":"syncStatus","summary":"The devices this library is shared with: connection, progress, last error (sd sync status).","responses":ok(A(R("PeerSyncStatus")))|errs(409)}},
 "/v1/sync/share":{"post":{"operationId":"share","summary":"Share the library with a paired device (sd library share).","requestBody":body("DeviceRequest"),"responses":ok(R("MessageAnswer"))|errs(400,409,413)}},
 "/v1/sync/conflicts":{"get":{"operationId":"syncConflicts","summary":"Edits that lost to concurrent ones, kept (sd sync conflicts).","responses":ok(A(R("SyncConflict")))}},
}
doc={"openapi":"3.1.0","info":{"title":"sdd API","version":"1",
  "description":"The sd daemon's API: HTTP/JSON on a Unix socket (mode 0600; only its owner can connect). Errors are JSON objects {\"error\": \"...\"}: 400 for a bad request (malformed JSON, unknown fields, bad values, '..' in paths), 404 for something unknown, 409 for a conflict, 413 for a body over 1 MiB, 500 for the daemon's own failures (logged). Tests/SDEndToEndTests/OpenAPITests.swift checks that this document and the server agree."},
 "paths":paths,"components":{"schemas":schemas}}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'openapi.json')
with open(out, 'w') as f:
    json.dump(doc, f, indent=2, sort_keys=False)
    f.write('\n')
print(f'{out}: {len(paths)} paths, {sum(len(v) for v in paths.values())} operations')
