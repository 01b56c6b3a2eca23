// Drives dicom-microscopy-viewer as Slim does (Slim's SlideViewer): series metadata over WADO-RS,
// VLWholeSlideMicroscopyImage per instance, the VOLUME images in a VolumeImageViewer, and Microscopy
// Bulk Simple Annotations through MicroscopyBulkSimpleAnnotations + addAnnotationGroups. The test
// reads window.slim (state, errors) and calls window.slim.showAnnotations().
;(function () {
  const dmv = window.dicomMicroscopyViewer
  const params = new URLSearchParams(window.location.search)
  const state = { phase: 'starting', errors: [], loadingErrors: [], volumeImages: 0, framesLoaded: 0, framesFailed: 0 }
  const slim = { state, viewer: null, client: null }
  window.slim = slim

  const container = document.getElementById('viewport')
  const EVENT = dmv.events.EVENTS
  container.addEventListener(EVENT.FRAME_LOADING_ENDED, (e) => {
    if (e.detail && e.detail.payload && e.detail.payload.pixelArray) state.framesLoaded += 1
  })
  container.addEventListener(EVENT.FRAME_LOADING_ERROR, () => {
    state.framesFailed += 1
  })
  container.addEventListener(EVENT.LOADING_ERROR, (e) => {
    state.loadingErrors.push(String((e.detail && e.detail.payload && e.detail.payload.message) || e.type))
  })

  const client = new DICOMwebClient.api.DICOMwebClient({ url: params.get('dicomweb') })
  slim.client = client
  const studyInstanceUID = params.get('study')

  async function main() {
    const metadata = await client.retrieveSeriesMetadata({ studyInstanceUID, seriesInstanceUID: params.get('series') })
    const volumeImages = []
    for (const m of metadata) {
      const image = new dmv.metadata.VLWholeSlideMicroscopyImage({ metadata: m })
      if (image.ImageType[2] === 'VOLUME' || image.ImageType[2] === 'THUMBNAIL') volumeImages.push(image)
    }
    state.volumeImages = volumeImages.length
    const viewer = new dmv.viewer.VolumeImageViewer({
      client,
      metadata: volumeImages,
      retrieveRendered: false,
      controls: ['overview', 'position'],
      errorInterceptor: (error) => {
        state.errors.push(`errorInterceptor: ${error && error.message}`)
        return error
      },
    })
    viewer.render({ container })
    slim.viewer = viewer
    state.phase = 'rendered'
  }

  // Loads the ANN series' instances and shows every annotation group in `color` (an RGB triplet).
  slim.showAnnotations = async function (annSeries, color) {
    const metadata = await client.retrieveSeriesMetadata({ studyInstanceUID, seriesInstanceUID: annSeries })
    const uids = []
    for (const m of metadata) {
      const ann = new dmv.metadata.MicroscopyBulkSimpleAnnotations({ metadata: m })
      slim.viewer.addAnnotationGroups(ann)
      for (const item of ann.AnnotationGroupSequence) uids.push(item.AnnotationGroupUID)
    }
    for (const uid of uids) slim.viewer.showAnnotationGroup(uid, { color, opacity: 1 })
    return slim.viewer.getAllAnnotationGroups().map((g) => ({ uid: g.uid, label: g.label, number: g.number, algorithmName: g.algorithmName, referencedSeriesInstanceUID: g.referencedSeriesInstanceUID }))
  }

  main().catch((error) => {
    state.phase = 'failed'
    state.errors.push(`main: ${error && error.stack ? error.stack : error}`)
  })
})()
