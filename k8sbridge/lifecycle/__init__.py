"""A pod's life, decided in one place: ``machine.apply(record, event, now) -> (record, intents)``.

Start at ``machine.py`` (the rules), then ``record.py`` (what is known about a pod),
``events.py`` (inputs) and ``intents.py`` (outputs). ``containers.py`` folds Mesos task updates
into one container's record; ``restarts.py`` is restartPolicy with the kubelet's crash
back-off; ``readiness.py`` holds readiness probe results back for their thresholds;
``termination.py`` says where termination messages are read; ``launches.py`` is the launch
side (current attempt, next relaunch, init phase attempt, deletion), part of the record
(``PodRecord.launch_side``). ``store.py`` keeps one record per pod (``PodStore``), one store
shared by the status writer and the offer loop (app.py makes it). Pure: the standard library
and ``k8sbridge.model`` only. The status writer (``kubelet/pods.py``) and the offer loop
(``scheduler/loop.py``) execute the intents; ``kubelet/statusmap.py`` renders records as
``pod.status``.
"""
